/**
 * The deface stage: given the segmentation, replace the facial voxels (and the ears, if asked)
 * with background or with a strong blur, feathered so that no voxel-sized staircase betrays the
 * cut, and never touching anything within the safety margin of the brain.
 */
import type { Vec3, Volume, VoxelArray } from '../io/volume.js'
import { allocateVoxels, CT_AIR_FLOOR_HU, voxelCount, withVoxels } from '../io/volume.js'
import { gaussianBlur3d } from '../voxels/gaussian-blur.js'
import { LABELS } from '../segment/segment-head.js'
import { distanceToMaskMm } from '../voxels/distance-transform.js'
import { boxAround, crop, grow, labelTable, paste, within, type Box } from '../voxels/voxel-box.js'

export type DefaceMode = 'remove' | 'blur'

export interface DefaceSettings {
  mode: DefaceMode
  /** Nothing within this many mm of the brain changes. */
  brainMarginMm: number
  /** Also remove the ears, as many ethics boards require. */
  ears: boolean
}

export const DEFAULT_DEFACE_SETTINGS: DefaceSettings = { mode: 'remove', brainMarginMm: 5, ears: false }

/** Width of the soft edge of the removal region against the tissue that stays: two voxels of a 2 mm scan. */
const FEATHER_MM = 4
/**
 * The air this close to the face goes too. The network stops the face about a voxel inside the
 * skin, so the dim partial-volume layer of the skin (about half as bright) stayed behind, labelled
 * background: rendered at a lower threshold than the check's, a defaced head showed eyelids and a
 * nose again (Subj1_T1, at 0.6 of its skin threshold: a face detected at 0.65). Any ghost of the
 * face in the air in front of it goes with it, as it does in pydeface's mask.
 */
const AIR_SHELL_MM = 10
/** The shell is measured between blocks of about this size (see nearTarget). */
const SHELL_BLOCK_MM = 2
/** Blur mode smooths over this scale: far beyond the size of eyelids, lips or a nose tip. */
const BLUR_SIGMA_MM = 8

/**
 * How much of each voxel was replaced: 0 = untouched, 1 = fully replaced. Stored only over the
 * box that holds the face; every voxel outside it is 0.
 */
export interface RemovalWeight {
  box: Box
  values: Float32Array
}

/** The weight of voxel `index` of a volume of `size`. */
export function weightAt(weight: RemovalWeight, index: number, size: Vec3): number {
  const { start, size: boxSize } = weight.box
  const x = (index % size[0]) - start[0]
  const y = (Math.floor(index / size[0]) % size[1]) - start[1]
  const z = Math.floor(index / (size[0] * size[1])) - start[2]
  if (x < 0 || y < 0 || z < 0 || x >= boxSize[0] || y >= boxSize[1] || z >= boxSize[2]) return 0
  return weight.values[x + boxSize[0] * (y + boxSize[1] * z)] as number
}

export interface DefaceOutcome {
  volume: Volume
  weight: RemovalWeight
  faceFound: boolean
  changedVoxels: number
  brainVoxelsChanged: number
  /** The value facial voxels were set to (real units), for the report. */
  backgroundValue: number
}

export function defaceVolume(volume: Volume, labels: Uint8Array, settings: DefaceSettings = DEFAULT_DEFACE_SETTINGS): DefaceOutcome {
  const isTarget = (label: number) => label === LABELS.face || (settings.ears && label === LABELS.ears)
  const backgroundValue = airValue(volume, labels)
  const targetLabels = boxAround(labels, volume.size, isTarget)
  if (targetLabels === undefined) {
    return { volume, weight: { box: { start: [0, 0, 0], size: [0, 0, 0] }, values: new Float32Array(0) }, faceFound: false, changedVoxels: 0, brainVoxelsChanged: 0, backgroundValue }
  }

  // Everything that can change lies in the target; what decides it lies within the brain margin
  // and the feather of that. Working in that box rather than the whole volume makes a 256^3 scan
  // several times quicker, with the same result.
  const reach = grow(targetLabels, volume.size, volume.spacing.map((s) => Math.ceil(AIR_SHELL_MM / s)) as Vec3)
  const decided = grow(reach, volume.size, volume.spacing.map((s) => Math.ceil((settings.brainMarginMm + FEATHER_MM) / s) + 1) as Vec3)
  const decidedWeight = removalWeight(crop(labels, volume.size, decided, new Uint8Array(voxelCount(decided.size))), isTarget, decided.size, volume.spacing, settings.brainMarginMm)
  const weight: RemovalWeight = { box: reach, values: crop(decidedWeight, decided.size, within(reach, decided), new Float32Array(voxelCount(reach.size))) }

  const blurSigma = volume.spacing.map((s) => BLUR_SIGMA_MM / s) as Vec3
  const read = settings.mode === 'remove' ? reach : grow(reach, volume.size, blurSigma.map(kernelRadius) as Vec3)
  const real = crop(volume.data, volume.size, read, new Float32Array(voxelCount(read.size)))
  const slope = volume.scaling?.slope ?? 1
  const intercept = volume.scaling?.intercept ?? 0
  if (slope !== 1 || intercept !== 0) for (let i = 0; i < real.length; i++) real[i] = (real[i] as number) * slope + intercept
  const replacement = settings.mode === 'remove' ? undefined : blurredWithNoise(real, read.size, blurSigma, weight, read)
  const out = allocateVoxels(volume.pixelType, volume.data.length)
  out.set(volume.data)
  const [lowest, highest] = storableRange(volume.data)
  const integer = isInteger(volume.data)
  let changedVoxels = 0
  let brainVoxelsChanged = 0
  forEachInBox(reach, volume.size, read, (i, r, b) => {
    const w = weight.values[b] as number
    if (w === 0) return
    // A NaN or infinite voxel (air in some float scans) would make its replacement NaN too.
    const before = real[r] as number
    const kept = before - before === 0 ? before : backgroundValue
    const value = kept * (1 - w) + (replacement === undefined ? backgroundValue : (replacement[r] as number)) * w
    const stored = (value - intercept) / slope
    out[i] = integer ? Math.min(highest, Math.max(lowest, Math.round(stored))) : stored
    if (out[i] !== volume.data[i]) {
      changedVoxels++
      if (labels[i] === LABELS.brain) brainVoxelsChanged++
    }
  })
  return { volume: withVoxels(volume, out), weight, faceFound: true, changedVoxels, brainVoxelsChanged, backgroundValue }
}

/**
 * Only the target changes: the face (and ears, if asked) and the air within AIR_SHELL_MM of them.
 * The weight is 1 in the target except near the tissue that stays (head, brain, ears that are
 * kept), where it rises from the cut over FEATHER_MM; towards air it stays 1, so no trace of the
 * skin is left. An outward feather would reach past the face into tissue that
 * the network calls head but may be brain (it did on one IXI head), so the fade lies inside. Within
 * the brain margin the weight is 0, fading in over FEATHER_MM beyond it.
 */
function removalWeight(labels: Uint8Array, isTarget: (label: number) => boolean, size: Vec3, spacing: Vec3, marginMm: number): Float32Array {
  const target = new Uint8Array(labels.length)
  const brain = new Uint8Array(labels.length)
  const kept = new Uint8Array(labels.length)
  const targets = labelTable(isTarget)
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as number
    target[i] = targets[label] as number
    brain[i] = label === LABELS.brain ? 1 : 0
    kept[i] = !target[i] && label !== LABELS.background ? 1 : 0
  }
  const shell = nearTarget(target, size, spacing)
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === LABELS.background && shell[i]) target[i] = 1
  }
  const toBrain = distanceToMaskMm(brain, size, spacing, marginMm + FEATHER_MM)
  const toKept = distanceToMaskMm(kept, size, spacing, FEATHER_MM)
  const weight = new Float32Array(target.length)
  for (let i = 0; i < weight.length; i++) {
    if (!target[i]) continue
    const inner = Math.min(1, (toKept[i] as number) / FEATHER_MM)
    const clearance = Math.min(1, Math.max(0, ((toBrain[i] as number) - marginMm) / FEATHER_MM))
    const w = inner * clearance
    weight[i] = w < 1e-3 ? 0 : w
  }
  return weight
}

/**
 * 1 within about AIR_SHELL_MM of the target. The distance is taken between blocks of about
 * SHELL_BLOCK_MM, a block counting as target if any voxel in it is: the shell's edge need not be
 * exact, and on a 1 mm scan the exact transform took 0.2-0.35 s of a 0.9 s deface. On a 2 mm scan
 * the blocks are voxels and the distance is exact; otherwise the edge may lie up to a block's
 * diagonal either way.
 */
function nearTarget(target: Uint8Array, size: Vec3, spacing: Vec3): Uint8Array {
  const factors = spacing.map((s) => Math.max(1, Math.floor(SHELL_BLOCK_MM / s))) as Vec3
  if (factors.every((f) => f === 1)) return Uint8Array.from(distanceToMaskMm(target, size, spacing, AIR_SHELL_MM), (d) => (d <= AIR_SHELL_MM ? 1 : 0))
  const blocks = size.map((n, a) => Math.ceil(n / (factors[a] as number))) as Vec3
  const [nx, ny, nz] = size
  // Each voxel's block, as an offset per axis.
  const strides = [1, blocks[0], blocks[0] * blocks[1]]
  const [ox, oy, oz] = size.map((n, a) => Int32Array.from({ length: n }, (_, v) => Math.floor(v / (factors[a] as number)) * (strides[a] as number))) as [Int32Array, Int32Array, Int32Array]
  const blockTarget = new Uint8Array(voxelCount(blocks))
  const near = new Uint8Array(target.length)
  // Two plain loops over the voxels, each with its block: the same walk through a visitor
  // callback cost about 0.05 s more of a 256^3 deface.
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = (oy[y] as number) + (oz[z] as number)
      for (let x = 0; x < nx; x++, i++) if (target[i]) blockTarget[row + (ox[x] as number)] = 1
    }
  }
  const distance = distanceToMaskMm(blockTarget, blocks, spacing.map((s, a) => s * (factors[a] as number)) as Vec3, AIR_SHELL_MM)
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = (oy[y] as number) + (oz[z] as number)
      for (let x = 0; x < nx; x++, i++) near[i] = (distance[row + (ox[x] as number)] as number) <= AIR_SHELL_MM ? 1 : 0
    }
  }
  return near
}

/** Blur mode: heavy smoothing plus noise matched to the scan, so features cannot be traced. */
function blurredWithNoise(real: Float32Array, size: Vec3, sigma: Vec3, removal: RemovalWeight, box: Box): Float32Array {
  const weight = new Float32Array(real.length)
  paste(removal.values, within(removal.box, box), weight, size)
  const blurred = gaussianBlur3d(real, size, sigma)
  let sum = 0
  let sumSq = 0
  let count = 0
  for (let i = 0; i < real.length; i++) {
    if ((weight[i] as number) < 0.5) continue
    const d = (real[i] as number) - (blurred[i] as number)
    sum += d
    sumSq += d * d
    count++
  }
  const spread = count > 1 ? Math.sqrt(Math.max(0, sumSq / count - (sum / count) ** 2)) : 0
  // A fixed seed keeps defacing deterministic: the same input gives the same output.
  let state = 0x9e3779b9
  const uniform = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = 0; i < blurred.length; i++) {
    if ((weight[i] as number) === 0) continue
    const gaussian = Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform())
    blurred[i] = (blurred[i] as number) + gaussian * spread
  }
  return blurred
}

/** Visits every voxel of `box` with its index in the volume, in the (larger) box `within`, and in `box` itself. */
function forEachInBox(box: Box, size: Vec3, within: Box, visit: (index: number, local: number, own: number) => void): void {
  const [bx, by, bz] = box.size
  const [wx, wy] = within.size
  let own = 0
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const [x0, y0, z0] = [box.start[0], box.start[1] + y, box.start[2] + z]
      const index = x0 + size[0] * (y0 + size[1] * z0)
      const local = x0 - within.start[0] + wx * (y0 - within.start[1] + wy * (z0 - within.start[2]))
      for (let x = 0; x < bx; x++, own++) visit(index + x, local + x, own)
    }
  }
}

/** How far, in voxels, gaussianBlur3d's kernel reaches. */
function kernelRadius(sigma: number): number {
  return sigma <= 0.05 ? 0 : Math.floor(4 * sigma + 0.5)
}

/**
 * The scan's own air: the median of what the model calls background (e.g. -1000 HU in CT). An MR
 * gets 0, as MR readers expect, unless its air lies below 0 (stored with an offset, air at -1000
 * say): a 0 there would fill the face with a block brighter than skin. A CT's padding (below
 * CT_AIR_FLOOR_HU) is not its air.
 */
function airValue(volume: Volume, labels: Uint8Array): number {
  const ct = volume.modality === 'CT'
  const slope = volume.scaling?.slope ?? 1
  const intercept = volume.scaling?.intercept ?? 0
  const air: number[] = []
  const step = Math.max(1, Math.floor(labels.length / 200_000))
  for (let i = 0; i < labels.length; i += step) {
    if (labels[i] !== LABELS.background) continue
    const value = (volume.data[i] as number) * slope + intercept
    if (Number.isFinite(value) && !(ct && value < CT_AIR_FLOOR_HU)) air.push(value)
  }
  if (air.length === 0) return ct ? -1000 : 0
  air.sort((a, b) => a - b)
  const median = air[air.length >> 1] as number
  return ct || median < 0 ? median : 0
}

function isInteger(data: VoxelArray): boolean {
  return !(data instanceof Float32Array || data instanceof Float64Array)
}

function storableRange(data: VoxelArray): [number, number] {
  if (data instanceof Uint8Array) return [0, 255]
  if (data instanceof Int8Array) return [-128, 127]
  if (data instanceof Uint16Array) return [0, 65535]
  if (data instanceof Int16Array) return [-32768, 32767]
  if (data instanceof Uint32Array) return [0, 4294967295]
  if (data instanceof Int32Array) return [-2147483648, 2147483647]
  return [-Infinity, Infinity]
}
