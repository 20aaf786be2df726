/**
 * The verify stage's camera: the skin surface of a head, ray-cast and lit like a photograph from
 * the front and from the sides, so that a face detector can be asked whether a face is still there.
 *
 * Rays are cast in patient (RAS) millimetres, which makes anisotropic voxels and any residual
 * obliquity come out right without resampling: the rays are mapped into the voxel grid instead.
 * The grid is the canonical one, block-averaged to about 2 mm and lightly smoothed: a face is
 * recognisable at that scale, shading is not staircased, and it is small. Each ray starts just
 * before the first cell where it can meet skin (see surfaceDepths), so a view costs tens of
 * milliseconds. Every camera looks at the centroid of the head.
 *
 * Views: yaw turns the camera about the patient's superior axis, positive towards the patient's
 * left; pitch raises it, positive from above. Yaw 0, pitch 0 looks at the face from in front with
 * the head upright and the patient's right on the image's left, as in a photograph of a person.
 */
import { forAnalysis, type Mat3, type Vec3, type Volume, type VoxelArray } from '../io/volume.js'
import { canonicalGeometry, canonicalTransformOf, toCanonicalVoxels } from '../io/canonical-grid.js'
import { mat3Transpose, mat3Vec3 } from '../io/matrix.js'

export interface ViewAngle {
  /** Degrees about the superior axis; positive moves the camera towards the patient's left. */
  yaw: number
  /** Degrees of elevation; positive looks from above. */
  pitch: number
}

export interface RenderedView extends ViewAngle {
  width: number
  height: number
  /** Grey levels, row-major, top row first; 0 where the ray met no skin. */
  pixels: Uint8Array
  /** Fraction of the pixels whose ray met the skin. */
  hitFraction: number
}

export interface RenderOptions {
  /** Real intensity of the skin surface; by default skinThreshold(volume, headMask). */
  threshold?: number
  /** Non-zero inside the head, one value per voxel in the volume's own layout. */
  headMask?: Uint8Array
  views?: ViewAngle[]
  /** Width and height in pixels. */
  imageSize?: number
}

const YAWS = [-60, -30, 0, 30, 60]
const PITCHES = [20, 0, -20]
/** Row by row from the highest camera down, each row from the patient's right round to the left. */
export const DEFAULT_VIEWS: ViewAngle[] = PITCHES.flatMap((pitch) => YAWS.map((yaw) => ({ yaw, pitch })))

/** The caption pictures of a view carry, such as "yaw +30 pitch -20". */
export function viewCaption(view: ViewAngle): string {
  const signed = (degrees: number) => (degrees > 0 ? `+${degrees}` : `${degrees}`)
  return `yaw ${signed(view.yaw)} pitch ${signed(view.pitch)}`
}

const DEFAULT_IMAGE_SIZE = 256
/** Wide enough for a whole head in any of the views. */
const FIELD_OF_VIEW_MM = 260
const RENDER_SPACING_MM = 2
/** Longest step, in cells, when near the skin: thin parts such as the nose wings are not stepped over. */
const STEP_CELLS = 0.5
const AMBIENT = 0.12
const DIFFUSE = 0.88
/** The light sits by the camera, raised this far, so that surfaces facing down (under the brows, nose and lips) are darker, as in a photograph. */
const LIGHT_ELEVATION_DEGREES = 20

export function renderSkinViews(input: Volume, options: RenderOptions = {}): RenderedView[] {
  const volume = forAnalysis(input)
  const threshold = options.threshold ?? thresholdOf(volume, options.headMask)
  return renderLooks(volume, [{ threshold, views: options.views ?? DEFAULT_VIEWS }], options.imageSize ?? DEFAULT_IMAGE_SIZE, undefined)[0] as RenderedView[]
}

/** Some views at one skin level. */
export interface SkinLook {
  threshold: number
  views: ViewAngle[]
}

/**
 * The views of each look, in order. The downsampled and smoothed grid is most of a render's cost
 * (about 0.4 s on a 256^3 scan) and is built once: at another level it is the same field,
 * shifted. The first look's renders are exactly renderSkinViews' at its threshold.
 */
export function renderSkinLooks(input: Volume, looks: SkinLook[], options: LooksOptions = {}): RenderedView[][] {
  return renderLooks(forAnalysis(input), looks, options.imageSize ?? DEFAULT_IMAGE_SIZE, options.onView)
}

export interface LooksOptions {
  /** Width and height in pixels. */
  imageSize?: number
  /** Called with each view as soon as it is rendered (and the index of its look), so that another thread can start on it. */
  onView?: (look: number, view: RenderedView) => void
}

function renderLooks(volume: Volume, looks: SkinLook[], imageSize: number, onView: LooksOptions['onView']): RenderedView[][] {
  if (!Number.isInteger(imageSize) || imageSize < 1) throw new Error(`image size must be a positive whole number of pixels, not ${imageSize}`)
  const [first] = looks
  if (first === undefined) return []
  const field = smoothedField(volume, first.threshold)
  return looks.map((look, l) => {
    const grid = gridAt(field, first.threshold - look.threshold)
    return look.views.map((angle) => {
      const view = renderView(grid, angle, imageSize)
      onView?.(l, view)
      return view
    })
  })
}

/**
 * The real intensity that separates air from skin. With a head mask it is halfway between the
 * air just outside the mask's boundary and the dimmer skin just inside; without one it is read
 * off the histogram (see histogramLevels).
 */
export function skinThreshold(volume: Volume, headMask?: Uint8Array): number {
  return thresholdOf(forAnalysis(volume), headMask)
}

/**
 * The histogram's skin threshold (as skinThreshold without a mask) and a faint one, halfway from
 * it down to the air's mean: the level of the skin's dim partial-volume fringe. What is left of a
 * face may show at the faint level only (a layer of the skin left behind did: eyelids and a nose
 * came back at 0.6 of the threshold), and anyone can render a volume at any level.
 */
export function skinLevels(volume: Volume): { skin: number; faint: number } {
  const { skin, air } = histogramLevels(realSamples(forAnalysis(volume)))
  return { skin, faint: (skin + air) / 2 }
}

/** skinThreshold of a volume already made ready by forAnalysis, so that renderSkinViews does not do that twice. */
function thresholdOf(volume: Volume, headMask?: Uint8Array): number {
  if (headMask === undefined) return histogramLevels(realSamples(volume)).skin
  if (headMask.length !== volume.data.length) throw new Error(`head mask has ${headMask.length} voxels, the volume ${volume.data.length}`)
  // The boundary is examined on the lattice the renderer samples, every factor-th voxel: as
  // telling, and on a 1 mm head eight times quicker.
  const factors = renderFactors(volume)
  const lattice = subsample(volume.data, volume.size, factors)
  return maskThreshold(toReal(volume, lattice.data), lattice.size, subsample(headMask, volume.size, factors).data)
}

/** Stored values made real in place. */
function toReal(volume: Volume, stored: Float32Array): Float32Array {
  const { slope, intercept } = volume.scaling ?? { slope: 1, intercept: 0 }
  for (let i = 0; i < stored.length; i++) stored[i] = (stored[i] as number) * slope + intercept
  return stored
}

/** About HISTOGRAM_SAMPLES real values, evenly spread over the volume. */
function realSamples(volume: Volume): Float32Array {
  return toReal(volume, everyNth(volume.data, Math.ceil(volume.data.length / HISTOGRAM_SAMPLES)))
}

// ---- Threshold -----------------------------------------------------------------------------------

const HISTOGRAM_BINS = 4096
/** A histogram of about this many voxels, evenly spread, is as good as one of all and much quicker. */
const HISTOGRAM_SAMPLES = 1 << 20
/**
 * Every head scan has at least this fraction of air, and CT pads the corners outside its
 * reconstruction circle (about 21% of a slice) with a value far below air. Lifting everything
 * under this percentile to it folds the padding into the air, so that Otsu splits air from
 * tissue rather than padding from air.
 */
const AIR_FLOOR_PERCENTILE = 25
/** Ignores the few hottest voxels (vessels, artefacts) that would stretch the histogram. */
const TOP_PERCENTILE = 99.9

/**
 * Otsu splits air from everything else about halfway between their means. Faces in MR are
 * dimmer than the scalp and the brain, and their thin parts are partial-volumed, so the surface
 * is drawn lower: halfway between the air's mean and the split, a quarter of the way from air to
 * tissue. In CT that is near -500 HU, far below fat and skin and further still below bone.
 */
function histogramLevels(values: Float32Array): { skin: number; air: number } {
  // Its own loop rather than realRange: kept to float32 values, V8 keeps it quick.
  let min = Infinity
  let max = -Infinity
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    if (v < min) min = v
    if (v > max) max = v
  }
  if (!(max > min)) return { skin: min, air: min }
  const coarse = histogram(values, min, max)
  const floor = percentileOf(coarse, AIR_FLOOR_PERCENTILE)
  const top = percentileOf(coarse, TOP_PERCENTILE)
  if (!(top > floor)) return { skin: floor, air: floor }
  const clipped = histogram(values, floor, top)
  const split = otsu(clipped)
  let airSum = 0
  let airCount = 0
  for (let b = 0; b <= split; b++) {
    airSum += (clipped.counts[b] as number) * binCentre(clipped, b)
    airCount += clipped.counts[b] as number
  }
  const splitValue = clipped.lo + (split + 1) * clipped.width
  const air = airSum / airCount
  return { skin: (air + splitValue) / 2, air }
}

/** Every stride-th value, as float32. */
function everyNth(data: VoxelArray, stride: number): Float32Array {
  const out = new Float32Array(Math.ceil(data.length / stride))
  for (let i = 0; i < out.length; i++) out[i] = data[i * stride] as number
  return out
}

interface Histogram {
  lo: number
  width: number
  counts: Float64Array
}

/** Values outside [lo, hi] count in the first or the last bin. */
function histogram(values: Float32Array, lo: number, hi: number): Histogram {
  const counts = new Float64Array(HISTOGRAM_BINS)
  const width = (hi - lo) / HISTOGRAM_BINS
  const last = HISTOGRAM_BINS - 1
  for (let i = 0; i < values.length; i++) {
    const b = Math.floor(((values[i] as number) - lo) / width)
    const bin = b < 0 ? 0 : b > last ? last : b
    counts[bin] = (counts[bin] as number) + 1
  }
  return { lo, width, counts }
}

function binCentre(h: Histogram, b: number): number {
  return h.lo + (b + 0.5) * h.width
}

function percentileOf(h: Histogram, p: number): number {
  let total = 0
  for (const c of h.counts) total += c
  const target = (p / 100) * total
  let seen = 0
  for (let b = 0; b < h.counts.length; b++) {
    seen += h.counts[b] as number
    if (seen >= target) return binCentre(h, b)
  }
  return binCentre(h, h.counts.length - 1)
}

/**
 * An empty stretch of the histogram at least this wide after Otsu's split is a real gap between
 * air and tissue, not the spacing of integer values (a 4096-bin histogram of a uint8 or int16
 * scan has a few empty bins between neighbouring values).
 */
const GAP_BINS = HISTOGRAM_BINS / 64

/**
 * The last bin of the lower class. Every split inside an empty stretch gives the same variance;
 * across a wide gap (a scan whose air was set to one value far below the tissue) the split is
 * put in its middle: at its first bin the surface would sit on the air itself, and the render
 * would show the smoothing's halo around the head instead of the skin.
 */
function otsu(h: Histogram): number {
  let total = 0
  let totalSum = 0
  for (let b = 0; b < h.counts.length; b++) {
    total += h.counts[b] as number
    totalSum += (h.counts[b] as number) * b
  }
  let lowCount = 0
  let lowSum = 0
  let best = 0
  let bestVariance = -1
  for (let b = 0; b < h.counts.length - 1; b++) {
    lowCount += h.counts[b] as number
    lowSum += (h.counts[b] as number) * b
    const highCount = total - lowCount
    if (lowCount === 0 || highCount === 0) continue
    const difference = lowSum / lowCount - (totalSum - lowSum) / highCount
    const variance = lowCount * highCount * difference * difference
    if (variance > bestVariance) {
      bestVariance = variance
      best = b
    }
  }
  let gapEnd = best
  while (gapEnd + 2 < h.counts.length && h.counts[gapEnd + 1] === 0) gapEnd++
  return gapEnd - best >= GAP_BINS ? best + Math.floor((gapEnd - best) / 2) : best
}

/**
 * Voxels up to this many steps either side of the mask boundary describe the air and the skin:
 * the first step is the partial-volume pair at the boundary, the second allows for a mask a
 * voxel off.
 */
const SHELL_DEPTH = 2
/** Faces are darker than the scalp in most MR, so the skin is taken from the dim end of its shell. */
const SKIN_PERCENTILE = 25

function maskThreshold(values: Float32Array, size: Vec3, headMask: Float32Array): number {
  const depth = shellDepths(size, headMask)
  const air: number[] = []
  const skin: number[] = []
  for (let i = 0; i < depth.length; i++) {
    if (depth[i] === 0) continue
    ;(headMask[i] ? skin : air).push(values[i] as number)
  }
  if (air.length === 0 || skin.length === 0) throw new Error('the head mask has no boundary: it is empty or fills the volume')
  return (quantile(air, 50) + quantile(skin, SKIN_PERCENTILE)) / 2
}

/**
 * Steps (6-connected) from each voxel to the nearest voxel on the other side of the mask
 * boundary, up to SHELL_DEPTH; 0 beyond. Each layer is one pass over all neighbouring pairs.
 */
function shellDepths(size: Vec3, mask: Float32Array): Uint8Array {
  const [nx, ny, nz] = size
  const depth = new Uint8Array(mask.length)
  for (let d = 1; d <= SHELL_DEPTH; d++) {
    for (const [stride, dx, dy, dz] of [
      [1, 1, 0, 0],
      [nx, 0, 1, 0],
      [nx * ny, 0, 0, 1],
    ] as const) {
      for (let z = 0; z < nz - dz; z++) {
        for (let y = 0; y < ny - dy; y++) {
          let i = nx * (y + ny * z)
          for (let x = 0; x < nx - dx; x++, i++) {
            const j = i + stride
            const sameSide = (mask[i] === 0) === (mask[j] === 0)
            if (d === 1) {
              if (!sameSide) {
                depth[i] = 1
                depth[j] = 1
              }
            } else if (sameSide) {
              if (depth[i] === d - 1 && depth[j] === 0) depth[j] = d
              else if (depth[j] === d - 1 && depth[i] === 0) depth[i] = d
            }
          }
        }
      }
    }
  }
  return depth
}

function quantile(values: number[], p: number): number {
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

// ---- The render grid -----------------------------------------------------------------------------

interface RenderGrid {
  /** Smoothed intensity minus the threshold, so the skin is the zero level; one voxel of air all round. */
  field: Float32Array
  /** The field's central differences (x, y, z per voxel); see centralDifferences. */
  differences: Float32Array
  size: Vec3
  /** Per cell: see occupiedCells. */
  occupied: Uint8Array
  /** The cells where rays from outside first meet skin: see surfaceCells. */
  surface: { centres: Float32Array; openFaces: Uint8Array }
  /** Half the diagonal of a cell, in mm. */
  cellRadiusMm: number
  /** Index-space box around every cell that may hold skin; rays are clipped to it. */
  lower: Vec3
  upper: Vec3
  /** RAS millimetres to grid index steps, and back. */
  toIndex: Mat3
  fromIndex: Mat3
  /** Index-space centroid of the voxels inside the skin: the point every camera looks at. */
  centre: Vec3
  /** A ray started this far behind the centre starts outside the grid. */
  diagonalMm: number
}

/** Voxels per render-grid voxel along each stored axis: about RENDER_SPACING_MM. */
function renderFactors(volume: Volume): Vec3 {
  return volume.spacing.map((s, a) => Math.min(volume.size[a] as number, Math.max(1, Math.round(RENDER_SPACING_MM / s)))) as Vec3
}

/** Every factor-th voxel along each axis, starting with the first, as float32. */
function subsample(data: VoxelArray, size: Vec3, factors: Vec3): { data: Float32Array; size: Vec3 } {
  const [fx, fy, fz] = factors
  const [nx, ny] = size
  const out = size.map((n, a) => Math.ceil(n / (factors[a] as number))) as Vec3
  const [mx, my, mz] = out
  const result = new Float32Array(mx * my * mz)
  let o = 0
  for (let z = 0; z < mz; z++) {
    for (let y = 0; y < my; y++) {
      const row = nx * (y * fy + ny * z * fz)
      for (let x = 0; x < mx; x++) result[o++] = data[row + x * fx] as number
    }
  }
  return { data: result, size: out }
}

/** The render grid's field and geometry, before the cells are found. */
type SmoothedField = Pick<RenderGrid, 'field' | 'differences' | 'size' | 'cellRadiusMm' | 'toIndex' | 'fromIndex' | 'diagonalMm'>

function smoothedField(volume: Volume, threshold: number): SmoothedField {
  // Downsampling first, in the stored layout and values, leaves only the small grid to reorder
  // and scale.
  const factors = renderFactors(volume)
  const averaged = blockAverage(volume.data, volume.size, factors)
  const averagedSpacing = volume.spacing.map((s, a) => s * (factors[a] as number)) as Vec3
  const steps = averagedSpacing.map((s) => (s > THICK_MM ? Math.round(s / RENDER_SPACING_MM) : 1)) as Vec3
  const small = interpolateBetween(averaged.data, averaged.size, steps)
  const transform = canonicalTransformOf({
    size: small.size,
    spacing: averagedSpacing.map((s, a) => s / (steps[a] as number)) as Vec3,
    origin: volume.origin.map((o, r) => o + factors.reduce((sum, f, a) => sum + (volume.direction[r * 3 + a] as number) * ((f - 1) / 2) * (volume.spacing[a] as number), 0)) as Vec3,
    direction: volume.direction,
  })
  const geometry = canonicalGeometry(transform)
  const { slope, intercept } = volume.scaling ?? { slope: 1, intercept: 0 }
  const { field, size } = padWithAir(toCanonicalVoxels(small.data, transform), geometry.size, slope, intercept - threshold)
  const smoothed = smooth(field, size)

  // The direction matrix is orthonormal, so the inverse of direction * spacing is
  // spacing^-1 * direction^T. LPS rows become RAS by negating the first two.
  const { spacing } = geometry
  const directionRas = geometry.direction.map((v, i) => (i < 6 ? -v : v)) as Mat3
  const toIndex = mat3Transpose(directionRas).map((v, i) => v / (spacing[Math.floor(i / 3)] as number)) as Mat3
  const fromIndex = directionRas.map((v, i) => v * (spacing[i % 3] as number)) as Mat3
  return {
    field: smoothed,
    differences: centralDifferences(smoothed, size),
    size,
    cellRadiusMm: Math.hypot(...spacing) / 2,
    toIndex,
    fromIndex,
    diagonalMm: Math.hypot(...size.map((n, a) => n * (spacing[a] as number))),
  }
}

/** The grid with its skin `shift` lower than the field's zero level (a fainter skin for a positive shift). */
function gridAt(smoothed: SmoothedField, shift: number): RenderGrid {
  const { size } = smoothed
  const field = shift === 0 ? smoothed.field : smoothed.field.map((v) => v + shift)
  const { occupied, lower, upper } = occupiedCells(field, size)
  return { ...smoothed, field, occupied, surface: surfaceCells(occupied, size), lower, upper, centre: insideCentroid(field, size) }
}

/**
 * field[+1] - field[-1] along each axis at every voxel not on the grid's outer layer (0 there).
 * The shading's gradient, a central difference of the interpolated field one voxel either side,
 * is the same trilinear interpolation of these: read off once, they cost a third of sampling the
 * field six times per pixel. A level shift (the faint look) leaves them unchanged.
 */
function centralDifferences(field: Float32Array, size: Vec3): Float32Array {
  const [nx, ny, nz] = size
  const nxy = nx * ny
  const out = new Float32Array(3 * field.length)
  for (let z = 1; z < nz - 1; z++) {
    for (let y = 1; y < ny - 1; y++) {
      const row = nx * (y + ny * z)
      for (let i = row + 1; i < row + nx - 1; i++) {
        out[3 * i] = (field[i + 1] as number) - (field[i - 1] as number)
        out[3 * i + 1] = (field[i + nx] as number) - (field[i - nx] as number)
        out[3 * i + 2] = (field[i + nxy] as number) - (field[i - nxy] as number)
      }
    }
  }
  return out
}

/** Means over factor-sized blocks; a partial block left at the far end of an axis is dropped. */
function blockAverage(data: VoxelArray, size: Vec3, factors: Vec3): { data: VoxelArray; size: Vec3 } {
  const [fx, fy, fz] = factors
  if (fx * fy * fz === 1) return { data, size }
  const [nx, ny] = size
  const out = size.map((n, a) => Math.floor(n / (factors[a] as number))) as Vec3
  const [mx, my, mz] = out
  const sum = new Float32Array(mx * my * mz)
  for (let z = 0; z < mz * fz; z++) {
    const bz = Math.floor(z / fz)
    for (let y = 0; y < my * fy; y++) {
      const target = mx * (Math.floor(y / fy) + my * bz)
      const row = nx * (y + ny * z)
      for (let bx = 0; bx < mx; bx++) {
        let s = 0
        const first = row + bx * fx
        for (let x = 0; x < fx; x++) s += data[first + x] as number
        sum[target + bx] = (sum[target + bx] as number) + s
      }
    }
  }
  const scale = 1 / (fx * fy * fz)
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) * scale
  return { data: sum, size: out }
}

/**
 * Axes coarser than this (thick slices, a 3.2 mm CT) are interpolated to about RENDER_SPACING_MM
 * before the smoothing: on 6 mm slices the smoothing alone left terraces across the face, and the
 * detector found no face on a head it finds at 2 mm once the slices are interpolated.
 */
const THICK_MM = 1.5 * RENDER_SPACING_MM

/** Linear interpolation putting steps[a] - 1 samples between neighbouring voxels along each axis a. */
function interpolateBetween(data: VoxelArray, size: Vec3, steps: Vec3): { data: VoxelArray; size: Vec3 } {
  let current = { data, size }
  for (let axis = 0; axis < 3; axis++) {
    const step = steps[axis] as number
    const n = current.size[axis] as number
    if (step === 1 || n < 2) continue
    const outSize = [...current.size] as Vec3
    outSize[axis] = (n - 1) * step + 1
    const inner = axis === 0 ? 1 : axis === 1 ? (current.size[0] as number) : (current.size[0] as number) * (current.size[1] as number)
    const outer = current.data.length / (n * inner)
    const out = new Float32Array(outer * (outSize[axis] as number) * inner)
    const source = current.data
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < (outSize[axis] as number); j++) {
        const lower = Math.min(n - 2, Math.floor(j / step))
        const t = j / step - lower
        const a = (o * n + lower) * inner
        const b = a + inner
        const target = (o * (outSize[axis] as number) + j) * inner
        for (let i = 0; i < inner; i++) out[target + i] = (source[a + i] as number) * (1 - t) + (source[b + i] as number) * t
      }
    }
    current = { data: out, size: outSize }
  }
  return current
}

/**
 * The field, data * slope + offset, inside one voxel of its lowest value: a head cut by the field
 * of view gets a closed surface along the cut, shaded like any other.
 */
function padWithAir(data: VoxelArray, size: Vec3, slope: number, offset: number): { field: Float32Array; size: Vec3 } {
  const [nx, ny, nz] = size
  const padded: Vec3 = [nx + 2, ny + 2, nz + 2]
  const [px, py, pz] = padded
  const field = new Float32Array(px * py * pz)
  let air = Infinity
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const source = nx * (y + ny * z)
      const target = 1 + px * (y + 1 + py * (z + 1))
      for (let x = 0; x < nx; x++) {
        const v = (data[source + x] as number) * slope + offset
        field[target + x] = v
        if (v < air) air = v
      }
    }
  }
  // The padding: the first and last slice, and the first and last row and column of the others.
  const slice = px * py
  field.fill(air, 0, slice)
  field.fill(air, (pz - 1) * slice)
  for (let z = 1; z < pz - 1; z++) {
    field.fill(air, z * slice, z * slice + px)
    field.fill(air, z * slice + (py - 1) * px, (z + 1) * slice)
    for (let y = 1; y < py - 1; y++) {
      field[z * slice + y * px] = air
      field[z * slice + y * px + px - 1] = air
    }
  }
  return { field, size: padded }
}

/**
 * A [1 2 1] / 4 binomial along each axis (sigma 0.7 voxel, 1.4 mm on a 2 mm grid): enough to
 * take the noise off MR skin and the terraces off 8-bit data, little enough to keep lips and
 * eyelids. The outermost voxels, air padding, are left alone.
 */
function smooth(field: Float32Array, size: Vec3): Float32Array {
  const [nx, ny, nz] = size
  // Two buffers in turn; `field` is overwritten. The padding is the same in both and never written.
  let current: Float32Array = field
  let out: Float32Array = field.slice()
  for (const stride of [1, nx, nx * ny]) {
    for (let z = 1; z < nz - 1; z++) {
      for (let y = 1; y < ny - 1; y++) {
        const row = nx * (y + ny * z)
        for (let i = row + 1; i < row + nx - 1; i++) {
          out[i] = 0.25 * ((current[i - stride] as number) + (current[i + stride] as number)) + 0.5 * (current[i] as number)
        }
      }
    }
    ;[current, out] = [out, current]
  }
  return current
}

/**
 * 1 for each cell (the cube between 8 neighbouring voxels, indexed like its lowest corner) that
 * may hold skin, because one of its corners is at or above the threshold, and the index-space
 * box around those cells. The last voxel of a row, column or slice is no cell's lowest corner;
 * its value means nothing.
 */
function occupiedCells(field: Float32Array, size: Vec3): { occupied: Uint8Array; lower: Vec3; upper: Vec3 } {
  const [nx, ny, nz] = size
  const occupied = new Uint8Array(field.length)
  for (let i = 0; i < field.length; i++) occupied[i] = (field[i] as number) >= 0 ? 1 : 0
  // An OR over the corners, one axis at a time; in increasing order, occupied[i + stride] is
  // still unmerged when occupied[i] reads it.
  for (const stride of [1, nx, nx * ny]) {
    for (let i = 0; i + stride < occupied.length; i++) occupied[i] = (occupied[i] as number) | (occupied[i + stride] as number)
  }
  let [x0, y0, z0] = [nx, ny, nz]
  let [x1, y1, z1] = [0, 0, 0]
  for (let z = 0; z < nz - 1; z++) {
    for (let y = 0; y < ny - 1; y++) {
      const row = nx * (y + ny * z)
      let first = 0
      while (first < nx - 1 && occupied[row + first] === 0) first++
      if (first === nx - 1) continue
      let last = nx - 2
      while (occupied[row + last] === 0) last--
      if (first < x0) x0 = first
      if (last > x1) x1 = last
      if (y < y0) y0 = y
      if (y > y1) y1 = y
      if (z < z0) z0 = z
      z1 = z
    }
  }
  const lower: Vec3 = [x0, y0, z0]
  const upper: Vec3 = [x1, y1, z1]
  // The box is shrunk by a hair so that rounding never puts a ray position in a cell outside it.
  return { occupied, lower: lower.map((v) => v + 1e-6) as Vec3, upper: upper.map((v) => v + 1 - 1e-6) as Vec3 }
}

/**
 * The occupied cells with a face on an unoccupied cell or on the edge of the grid: a ray from
 * outside enters one of these, through such an open face, before any other occupied cell. Their
 * index-space centres (x, y, z, x, y, z, ...) and which faces are open, one bit per face in the
 * order -x, +x, -y, +y, -z, +z.
 */
function surfaceCells(occupied: Uint8Array, size: Vec3): { centres: Float32Array; openFaces: Uint8Array } {
  const [nx, ny, nz] = size
  const nxy = nx * ny
  const [lastX, lastY, lastZ] = [nx - 2, ny - 2, nz - 2]
  const centres: number[] = []
  const openFaces: number[] = []
  for (let z = 0; z <= lastZ; z++) {
    for (let y = 0; y <= lastY; y++) {
      let i = nx * (y + ny * z)
      for (let x = 0; x <= lastX; x++, i++) {
        if (occupied[i] === 0) continue
        const open =
          (x === 0 || occupied[i - 1] === 0 ? 1 : 0) |
          (x === lastX || occupied[i + 1] === 0 ? 2 : 0) |
          (y === 0 || occupied[i - nx] === 0 ? 4 : 0) |
          (y === lastY || occupied[i + nx] === 0 ? 8 : 0) |
          (z === 0 || occupied[i - nxy] === 0 ? 16 : 0) |
          (z === lastZ || occupied[i + nxy] === 0 ? 32 : 0)
        if (open === 0) continue
        centres.push(x + 0.5, y + 0.5, z + 0.5)
        openFaces.push(open)
      }
    }
  }
  return { centres: Float32Array.from(centres), openFaces: Uint8Array.from(openFaces) }
}

function insideCentroid(field: Float32Array, size: Vec3): Vec3 {
  const [nx, ny, nz] = size
  let sx = 0
  let sy = 0
  let sz = 0
  let n = 0
  let i = 0
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if ((field[i] as number) < 0) continue
        sx += x
        sy += y
        sz += z
        n++
      }
    }
  }
  return n === 0 ? [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2] : [sx / n, sy / n, sz / n]
}

// ---- Ray casting -----------------------------------------------------------------------------------

/** Halvings of the step that found the skin, before the final linear interpolation. */
const REFINEMENTS = 2
/** How far past a cell's exit the next sample goes, so that it lies in the next cell. */
const CELL_EXIT_MM = 1e-4

function renderView(grid: RenderGrid, view: ViewAngle, imageSize: number): RenderedView {
  const { field, differences, size, occupied, toIndex, lower, upper, centre, diagonalMm } = grid
  const [nx, ny, nz] = size
  const nxy = nx * ny

  const yaw = (view.yaw * Math.PI) / 180
  const pitch = (view.pitch * Math.PI) / 180
  // RAS: the camera sits anterior at yaw 0 and moves towards the patient's left (-R) as yaw grows.
  const toCamera: Vec3 = [-Math.sin(yaw) * Math.cos(pitch), Math.cos(yaw) * Math.cos(pitch), Math.sin(pitch)]
  const right: Vec3 = [-Math.cos(yaw), -Math.sin(yaw), 0]
  const up = cross(toCamera, right)
  const forward: Vec3 = [-toCamera[0], -toCamera[1], -toCamera[2]]
  const elevation = (LIGHT_ELEVATION_DEGREES * Math.PI) / 180
  const [lx, ly, lz] = toCamera.map((c, a) => c * Math.cos(elevation) + (up[a] as number) * Math.sin(elevation)) as Vec3

  const pixelMm = FIELD_OF_VIEW_MM / imageSize
  // In grid index steps: per mm along the ray, and per pixel across and up the picture. The ray
  // through the middle of the picture starts a grid diagonal behind the centre, off the grid.
  const [dx, dy, dz] = mat3Vec3(toIndex, forward)
  const [rx, ry, rz] = mat3Vec3(toIndex, right.map((v) => v * pixelMm) as Vec3)
  const [ux, uy, uz] = mat3Vec3(toIndex, up.map((v) => v * pixelMm) as Vec3)
  const cx = centre[0] - diagonalMm * dx
  const cy = centre[1] - diagonalMm * dy
  const cz = centre[2] - diagonalMm * dz
  const step = STEP_CELLS / Math.max(Math.abs(dx), Math.abs(dy), Math.abs(dz))
  const [lowX, lowY, lowZ] = lower
  const [highX, highY, highZ] = upper
  const lastX = nx - 1 - 1e-6
  const lastY = ny - 1 - 1e-6
  const lastZ = nz - 1 - 1e-6
  // Where both positions a central difference takes are in cells whose corners all have differences.
  const innerX = nx - 2
  const innerY = ny - 2
  const innerZ = nz - 2
  // Along an axis the ray moves on, the next cell boundary ahead is (floor + next - position) *
  // inverse mm of ray away. Along one it does not, a huge finite inverse keeps that axis out of
  // the minimum without making 0 * Infinity.
  const nextX = dx >= 0 ? 1 : 0
  const nextY = dy >= 0 ? 1 : 0
  const nextZ = dz >= 0 ? 1 : 0
  const invX = dx === 0 ? 1e30 : 1 / dx
  const invY = dy === 0 ? 1e30 : 1 / dy
  const invZ = dz === 0 ? 1e30 : 1 / dz

  const trilinear = (o: number, fx: number, fy: number, fz: number): number => {
    const c00 = (field[o] as number) + ((field[o + 1] as number) - (field[o] as number)) * fx
    const c10 = (field[o + nx] as number) + ((field[o + nx + 1] as number) - (field[o + nx] as number)) * fx
    const c01 = (field[o + nxy] as number) + ((field[o + nxy + 1] as number) - (field[o + nxy] as number)) * fx
    const c11 = (field[o + nxy + nx] as number) + ((field[o + nxy + nx + 1] as number) - (field[o + nxy + nx] as number)) * fx
    const c0 = c00 + (c10 - c00) * fy
    const c1 = c01 + (c11 - c01) * fy
    return c0 + (c1 - c0) * fz
  }
  /** On the grid only, where every position has a cell. */
  const sampleInside = (x: number, y: number, z: number): number => {
    const i = x | 0
    const j = y | 0
    const k = z | 0
    return trilinear(i + nx * j + nxy * k, x - i, y - j, z - k)
  }
  const start = surfaceDepths(grid, forward, right, up, pixelMm, imageSize)
  const pixels = new Uint8Array(imageSize * imageSize)
  let hits = 0
  for (let row = 0; row < imageSize; row++) {
    const down = imageSize / 2 - row - 0.5
    for (let column = 0; column < imageSize; column++) {
      const nearest = start[row * imageSize + column] as number
      if (nearest === Infinity) continue
      const across = column + 0.5 - imageSize / 2
      const ox = cx + across * rx + down * ux
      const oy = cy + across * ry + down * uy
      const oz = cz + across * rz + down * uz
      // Slab clipping against the box around the skin.
      let t0 = 0
      let t1 = Infinity
      if (dx === 0) {
        if (ox < lowX || ox > highX) continue
      } else {
        const a = (lowX - ox) * invX
        const b = (highX - ox) * invX
        t0 = Math.max(t0, Math.min(a, b))
        t1 = Math.min(t1, Math.max(a, b))
      }
      if (dy === 0) {
        if (oy < lowY || oy > highY) continue
      } else {
        const a = (lowY - oy) * invY
        const b = (highY - oy) * invY
        t0 = Math.max(t0, Math.min(a, b))
        t1 = Math.min(t1, Math.max(a, b))
      }
      if (dz === 0) {
        if (oz < lowZ || oz > highZ) continue
      } else {
        const a = (lowZ - oz) * invZ
        const b = (highZ - oz) * invZ
        t0 = Math.max(t0, Math.min(a, b))
        t1 = Math.min(t1, Math.max(a, b))
      }
      t0 = Math.max(t0, nearest)
      if (t0 > t1) continue

      let t = t0
      let previous = t0
      let fPrevious = NaN
      let fIn = 0
      let found = false
      while (t <= t1) {
        const x = ox + t * dx
        const y = oy + t * dy
        const z = oz + t * dz
        // Positions are inside the box, so never negative: | 0 is floor.
        const i = x | 0
        const j = y | 0
        const k = z | 0
        const o = i + nx * j + nxy * k
        if (occupied[o] === 1) {
          const f = trilinear(o, x - i, y - j, z - k)
          if (f >= 0) {
            fIn = f
            found = true
            break
          }
          previous = t
          fPrevious = f
          t += step
        } else {
          // On to the next cell: where the ray leaves this one.
          previous = t
          fPrevious = NaN
          t += Math.min((i + nextX - x) * invX, (j + nextY - y) * invY, (k + nextZ - z) * invZ) + CELL_EXIT_MM
        }
      }
      if (!found) continue

      // The skin lies between `previous` (outside) and `t` (inside).
      let outside = previous
      let inside = t
      let fOut = Number.isNaN(fPrevious) ? sampleInside(ox + outside * dx, oy + outside * dy, oz + outside * dz) : fPrevious
      for (let r = 0; r < REFINEMENTS; r++) {
        const mid = (outside + inside) / 2
        const f = sampleInside(ox + mid * dx, oy + mid * dy, oz + mid * dz)
        if (f >= 0) {
          inside = mid
          fIn = f
        } else {
          outside = mid
          fOut = f
        }
      }
      const th = fIn > fOut ? outside + ((inside - outside) * -fOut) / (fIn - fOut) : inside
      const x = ox + th * dx
      const y = oy + th * dy
      const z = oz + th * dz
      // Central differences one voxel apart, kept on the grid; intensity rises into the head, so
      // the outward normal is -gradient. Away from the grid's edge they are the interpolated
      // differences; at the edge, where one position is clamped, the field is sampled.
      let gx: number
      let gy: number
      let gz: number
      if (x >= 1 && y >= 1 && z >= 1 && x < innerX && y < innerY && z < innerZ) {
        const i = x | 0
        const j = y | 0
        const k = z | 0
        const fx = x - i
        const fy = y - j
        const fz = z - k
        const o = 3 * (i + nx * j + nxy * k)
        const ex = 1 - fx
        const w00 = (1 - fy) * (1 - fz)
        const w10 = fy * (1 - fz)
        const w01 = (1 - fy) * fz
        const w11 = fy * fz
        const a = ex * w00
        const b = fx * w00
        const c = ex * w10
        const d = fx * w10
        const e = ex * w01
        const f = fx * w01
        const g = ex * w11
        const h = fx * w11
        const o1 = o + 3
        const o2 = o + 3 * nx
        const o3 = o2 + 3
        const o4 = o + 3 * nxy
        const o5 = o4 + 3
        const o6 = o4 + 3 * nx
        const o7 = o6 + 3
        const D = differences
        gx = a * (D[o] as number) + b * (D[o1] as number) + c * (D[o2] as number) + d * (D[o3] as number) + e * (D[o4] as number) + f * (D[o5] as number) + g * (D[o6] as number) + h * (D[o7] as number)
        gy = a * (D[o + 1] as number) + b * (D[o1 + 1] as number) + c * (D[o2 + 1] as number) + d * (D[o3 + 1] as number) + e * (D[o4 + 1] as number) + f * (D[o5 + 1] as number) + g * (D[o6 + 1] as number) + h * (D[o7 + 1] as number)
        gz = a * (D[o + 2] as number) + b * (D[o1 + 2] as number) + c * (D[o2 + 2] as number) + d * (D[o3 + 2] as number) + e * (D[o4 + 2] as number) + f * (D[o5 + 2] as number) + g * (D[o6 + 2] as number) + h * (D[o7 + 2] as number)
      } else {
        gx = sampleInside(Math.min(x + 1, lastX), y, z) - sampleInside(Math.max(x - 1, 0), y, z)
        gy = sampleInside(x, Math.min(y + 1, lastY), z) - sampleInside(x, Math.max(y - 1, 0), z)
        gz = sampleInside(x, y, Math.min(z + 1, lastZ)) - sampleInside(x, y, Math.max(z - 1, 0))
      }
      // Index-space gradient to RAS: toIndex^T g.
      const nxr = -(toIndex[0] * gx + toIndex[3] * gy + toIndex[6] * gz)
      const nyr = -(toIndex[1] * gx + toIndex[4] * gy + toIndex[7] * gz)
      const nzr = -(toIndex[2] * gx + toIndex[5] * gy + toIndex[8] * gz)
      const length = Math.sqrt(nxr * nxr + nyr * nyr + nzr * nzr)
      const lambert = length > 0 ? Math.max(0, (nxr * lx + nyr * ly + nzr * lz) / length) : 1
      pixels[row * imageSize + column] = Math.max(1, Math.round(255 * (AMBIENT + DIFFUSE * lambert)))
      hits++
    }
  }
  return { yaw: view.yaw, pitch: view.pitch, width: imageSize, height: imageSize, pixels, hitFraction: hits / pixels.length }
}

/**
 * For each pixel, how far along its ray (in mm, as renderView measures it) the skin can be met
 * at the earliest; Infinity where it cannot. Every surface cell with an open face towards the
 * camera is splatted over the pixels its footprint may cover, at the depth of its centre less
 * its radius: a ray that enters a cell with skin entered such a cell first, at no less than that
 * depth.
 */
function surfaceDepths(grid: RenderGrid, forward: Vec3, right: Vec3, up: Vec3, pixelMm: number, imageSize: number): Float32Array {
  const { surface, fromIndex, toIndex, cellRadiusMm, diagonalMm, centre } = grid
  const { centres, openFaces } = surface
  // A ray moving up an axis enters cells through their lower face on it, and the other way round.
  const [dx, dy, dz] = mat3Vec3(toIndex, forward)
  const facing = (dx > 0 ? 1 : dx < 0 ? 2 : 0) | (dy > 0 ? 4 : dy < 0 ? 8 : 0) | (dz > 0 ? 16 : dz < 0 ? 32 : 0)
  // Index-space rows of the map from (cell centre - camera centre) to column, row and depth.
  const fromIndexT = mat3Transpose(fromIndex)
  const [ax, ay, az] = mat3Vec3(fromIndexT, right).map((v) => v / pixelMm) as Vec3
  const [bx, by, bz] = mat3Vec3(fromIndexT, up).map((v) => v / pixelMm) as Vec3
  const [fx, fy, fz] = mat3Vec3(fromIndexT, forward)
  const [cx, cy, cz] = centre
  const reach = cellRadiusMm / pixelMm
  const middle = imageSize / 2 - 0.5
  const last = imageSize - 1
  const depth = new Float32Array(imageSize * imageSize).fill(Infinity)
  for (let cell = 0; cell < openFaces.length; cell++) {
    if (((openFaces[cell] as number) & facing) === 0) continue
    const x = (centres[3 * cell] as number) - cx
    const y = (centres[3 * cell + 1] as number) - cy
    const z = (centres[3 * cell + 2] as number) - cz
    const column = middle + ax * x + ay * y + az * z
    const row = middle - (bx * x + by * y + bz * z)
    const t = fx * x + fy * y + fz * z + diagonalMm - cellRadiusMm
    const c0 = Math.max(0, Math.ceil(column - reach))
    const c1 = Math.min(last, Math.floor(column + reach))
    const r0 = Math.max(0, Math.ceil(row - reach))
    const r1 = Math.min(last, Math.floor(row + reach))
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const p = r * imageSize + c
        if (t < (depth[p] as number)) depth[p] = t
      }
    }
  }
  return depth
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
