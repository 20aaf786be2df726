/**
 * The deface stage: given the segmentation, replace the facial voxels (and the ears, if asked)
 * with background or with a strong blur, feathered so that no voxel-sized staircase betrays the
 * cut, and never touching anything within the safety margin of the brain.
 */
import type { Volume, VoxelArray } from '../io/volume.js'
import { allocateVoxels, realIntensities, withVoxels } from '../io/volume.js'
import { gaussianBlur3d } from '../segment/gaussian-blur.js'
import { LABELS } from '../segment/segment-head.js'
import { distanceToMaskMm } from './distance-transform.js'

export type DefaceMode = 'remove' | 'blur'

export interface DefaceSettings {
  mode: DefaceMode
  /** Nothing within this many mm of the brain changes. */
  brainMarginMm: number
  /** Also remove the ears, as many ethics boards require. */
  ears: boolean
}

export const DEFAULT_DEFACE_SETTINGS: DefaceSettings = { mode: 'remove', brainMarginMm: 5, ears: false }

/** Width of the soft edge of the removal region; about one voxel of a 2 mm scan. */
const FEATHER_MM = 2
/** Blur mode smooths over this scale: far beyond the size of eyelids, lips or a nose tip. */
const BLUR_SIGMA_MM = 8

export interface DefaceOutcome {
  volume: Volume
  /** 0 = untouched, 1 = fully replaced, per voxel. */
  weight: Float32Array
  faceFound: boolean
  changedVoxels: number
  brainVoxelsChanged: number
  /** The value facial voxels were set to (real units), for the report. */
  backgroundValue: number
}

export function defaceVolume(volume: Volume, labels: Uint8Array, settings: DefaceSettings = DEFAULT_DEFACE_SETTINGS): DefaceOutcome {
  const target = new Uint8Array(labels.length)
  let targetCount = 0
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === LABELS.face || (settings.ears && labels[i] === LABELS.ears)) {
      target[i] = 1
      targetCount++
    }
  }
  const real = realIntensities(volume)
  const backgroundValue = airValue(volume, real, labels)
  if (targetCount === 0) {
    return { volume, weight: new Float32Array(labels.length), faceFound: false, changedVoxels: 0, brainVoxelsChanged: 0, backgroundValue }
  }

  const weight = removalWeight(target, volume, labels, settings.brainMarginMm)
  const replacement = settings.mode === 'remove' ? undefined : blurredWithNoise(real, volume, weight)
  const out = allocateVoxels(volume.pixelType, volume.data.length)
  const slope = volume.scaling?.slope ?? 1
  const intercept = volume.scaling?.intercept ?? 0
  const [lowest, highest] = storableRange(volume.data)
  let changedVoxels = 0
  let brainVoxelsChanged = 0
  for (let i = 0; i < out.length; i++) {
    const w = weight[i] as number
    const original = volume.data[i] as number
    if (w === 0) {
      out[i] = original
      continue
    }
    const value = (real[i] as number) * (1 - w) + (replacement === undefined ? backgroundValue : (replacement[i] as number)) * w
    const stored = (value - intercept) / slope
    out[i] = isInteger(volume.data) ? Math.min(highest, Math.max(lowest, Math.round(stored))) : stored
    if (out[i] !== original) {
      changedVoxels++
      if (labels[i] === LABELS.brain) brainVoxelsChanged++
    }
  }
  return { volume: withVoxels(volume, out), weight, faceFound: true, changedVoxels, brainVoxelsChanged, backgroundValue }
}

/**
 * 1 inside the target, falling smoothly to 0 over FEATHER_MM outside it, and forced smoothly to 0
 * within the brain's margin: the fade towards the brain happens outside the margin, never in it.
 */
function removalWeight(target: Uint8Array, volume: Volume, labels: Uint8Array, marginMm: number): Float32Array {
  const sigma = volume.spacing.map((s) => FEATHER_MM / 2 / s) as [number, number, number]
  const soft = gaussianBlur3d(Float32Array.from(target), volume.size, sigma)
  const brain = new Uint8Array(labels.length)
  for (let i = 0; i < labels.length; i++) brain[i] = labels[i] === LABELS.brain ? 1 : 0
  const toBrain = distanceToMaskMm(brain, volume.size, volume.spacing)
  const weight = new Float32Array(target.length)
  for (let i = 0; i < weight.length; i++) {
    const inner = target[i] ? 1 : Math.min(1, 2 * (soft[i] as number))
    const clearance = Math.min(1, Math.max(0, ((toBrain[i] as number) - marginMm) / FEATHER_MM))
    const w = inner * clearance
    weight[i] = w < 1e-3 ? 0 : w
  }
  return weight
}

/** Blur mode: heavy smoothing plus noise matched to the scan, so features cannot be traced. */
function blurredWithNoise(real: Float32Array, volume: Volume, weight: Float32Array): Float32Array {
  const sigma = volume.spacing.map((s) => BLUR_SIGMA_MM / s) as [number, number, number]
  const blurred = gaussianBlur3d(real, volume.size, sigma)
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

/** 0 on MR; on CT, the scan's own air (median of what the model calls background), e.g. -1000 HU. */
function airValue(volume: Volume, real: Float32Array, labels: Uint8Array): number {
  if (volume.modality !== 'CT') return 0
  const air: number[] = []
  const step = Math.max(1, Math.floor(labels.length / 200_000))
  for (let i = 0; i < labels.length; i += step) if (labels[i] === LABELS.background) air.push(real[i] as number)
  if (air.length === 0) return -1000
  air.sort((a, b) => a - b)
  return air[Math.floor(air.length / 2)] as number
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
