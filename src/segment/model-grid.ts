/**
 * The model sees every head on one grid: canonical RAS voxel axes, 2.5 mm isotropic, 96^3,
 * centred on the head, intensities scaled to [0, 1] by percentiles. These functions mirror
 * models/train/common.py step for step, because a model is only as good as the match between
 * what it was trained on and what it is given.
 */
import { realRange, type IntensityScaling, type Vec3, type VoxelArray } from '../io/volume.js'
import { canonicalGeometry, type CanonicalTransform } from '../io/canonical-grid.js'
import { gaussianBlur3d, gaussianKernel, reflectIndex } from '../voxels/gaussian-blur.js'

export const MODEL_GRID_SIZE = 96
export const MODEL_GRID_SPACING = 2.5

/** Where the model grid sits, in mm of the canonical voxel frame (voxel i at i * zoom). */
export interface GridPlacement {
  /** Canonical voxel size in mm. */
  zooms: Vec3
  /** mm position of model-grid voxel (0, 0, 0). */
  offsetMm: Vec3
}

export function placeGrid(centreMm: Vec3, zooms: Vec3): GridPlacement {
  const half = ((MODEL_GRID_SIZE - 1) / 2) * MODEL_GRID_SPACING
  return { zooms, offsetMm: centreMm.map((c) => c - half) as Vec3 }
}

/**
 * Centre of the bounding box of the head (the largest bright connected blob), in mm of the
 * canonical voxel frame. Computed on blocks of about 4 mm: the centre only needs to be good to a
 * few mm, which training covers with random shifts, and full resolution would cost a second on a
 * 256^3 volume. The blocks are summed straight from the stored voxels.
 */
export function headCentreMm(data: VoxelArray, transform: CanonicalTransform, scaling?: IntensityScaling): Vec3 {
  const { size, spacing: zooms } = canonicalAxes(transform)
  const factor = zooms.map((z) => Math.max(1, Math.floor(4 / z))) as Vec3
  const small = size.map((n, i) => Math.ceil(n / (factor[i] as number))) as Vec3
  const blocks = blockMean(data, transform, factor, small)
  if (scaling !== undefined) for (let i = 0; i < blocks.length; i++) blocks[i] = (blocks[i] as number) * scaling.slope + scaling.intercept
  const smooth = gaussianBlur3d(blocks, small, [1, 1, 1])
  const [lo, hi] = percentiles(smooth, [0.5, 99.5])
  const threshold = lo + 0.1 * (hi - lo)
  const component = largestComponent(smooth, small, threshold)
  if (component === undefined) return size.map((n, i) => ((n - 1) / 2) * (zooms[i] as number)) as Vec3
  return component.map(([min, max], axis) => {
    const f = factor[axis] as number
    // A block b covers voxels b*f .. b*f+f-1; its centre is at b*f + (f-1)/2.
    const centreVoxel = ((min + max) / 2) * f + (f - 1) / 2
    return centreVoxel * (zooms[axis] as number)
  }) as Vec3
}

/** Size and voxel size of the canonical axes, and for each stored axis the canonical axis it is. */
function canonicalAxes(transform: CanonicalTransform): { size: Vec3; spacing: Vec3; canonicalOf: Vec3 } {
  const canonicalOf: Vec3 = [0, 0, 0]
  transform.axes.forEach((a, c) => (canonicalOf[a] = c))
  const { size, spacing } = canonicalGeometry(transform)
  return { size, spacing, canonicalOf }
}

/** For each index along stored axis `d`, its index along the canonical axis it is. */
function canonicalIndexAlong(transform: CanonicalTransform, d: number): Int32Array {
  const c = transform.axes.indexOf(d)
  const n = transform.original.size[d] as number
  const flipped = transform.flipped[c] as boolean
  return Int32Array.from({ length: n }, (_, t) => (flipped ? n - 1 - t : t))
}

/**
 * Trilinear sampling onto the model grid, after a Gaussian pre-filter when downsampling, from the
 * stored voxels of any layout. The result is laid out [x][y][z] with z fastest, as the network's
 * (N, C, X, Y, Z) input expects.
 *
 * Blur and interpolation are both separable and linear, so each axis is one small weight matrix
 * (output sample x source voxel) and the resampling is three contractions, one per axis. That
 * gives exactly the blurred-then-sampled values without blurring the voxels no sample reads.
 * The contractions run over the stored array in its own order, canonical x first, then y, then
 * z, each output summed in double precision in canonical tap order whatever the loop order, so
 * the same head stored with its axes permuted or flipped gives the same grid, bit for bit.
 */
export function resampleToModelGrid(data: VoxelArray, transform: CanonicalTransform, placement: GridPlacement, scaling?: IntensityScaling): Float32Array {
  const { zooms, offsetMm } = placement
  const n = MODEL_GRID_SIZE
  const { size } = canonicalAxes(transform)
  const weights = [0, 1, 2].map((c) => {
    const zoom = zooms[c] as number
    const sigma = Math.max(MODEL_GRID_SPACING / zoom - 1, 0) * 0.5
    return axisWeights(n, (i) => ((offsetMm[c] as number) + i * MODEL_GRID_SPACING) / zoom, size[c] as number, sigma)
  })
  let current: ArrayLike<number> = data
  const dims = [...transform.original.size] as Vec3
  for (let c = 0; c < 3; c++) {
    const d = transform.axes[c] as number
    current = contract(current, dims, d, weights[c] as AxisWeights, canonicalIndexAlong(transform, d))
    dims[d] = n
  }
  const storedStride = [1, n, n * n]
  const [sx, sy, sz] = transform.axes.map((a) => storedStride[a] as number) as Vec3
  const inside = weights.map((w) => w.taps.map((taps) => taps.length > 0))
  const [ix, iy, iz] = inside as [boolean[], boolean[], boolean[]]
  const slope = scaling?.slope ?? 1
  const intercept = scaling?.intercept ?? 0
  // Beyond the field of view: the scan's own darkest value, its air or padding (0 in most MR,
  // -1000 in an MR stored with an offset). A fixed 0 put a slab brighter than anything around
  // such a scan, and no face was found on it. A 256 mm scan covers the grid: no pass needed.
  const outside = inside.every((axis) => axis.every(Boolean)) ? 0 : (realRange(data, scaling)[0] as number)
  const out = new Float32Array(n * n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let k = 0; k < n; k++) {
        const stored = current[i * sx + j * sy + k * sz] as number
        out[(i * n + j) * n + k] = ix[i] && iy[j] && iz[k] ? stored * slope + intercept : outside
      }
    }
  }
  return out
}

/**
 * One axis of the resampling: along stored axis `axis`, output sample i is the weighted sum of
 * the source voxels its taps cover (canonical positions, found in the array at `position`).
 */
function contract(source: ArrayLike<number>, dims: Vec3, axis: number, weights: AxisWeights, position: Int32Array): Float32Array {
  const length = dims[axis] as number
  const count = weights.start.length
  const inner = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1]
  const outer = source.length / (length * inner)
  const out = new Float32Array(outer * count * inner)
  const width = Math.max(0, ...weights.taps.map((t) => t.length))
  const tapCount = Int32Array.from(weights.taps, (t) => t.length)
  const tapWeight = new Float64Array(count * width)
  const tapPosition = new Int32Array(count * width)
  weights.taps.forEach((taps, i) => {
    taps.forEach((w, t) => {
      tapWeight[i * width + t] = w
      tapPosition[i * width + t] = position[(weights.start[i] as number) + t] as number
    })
  })
  const taps: Taps = { count: tapCount, weight: tapWeight, position: tapPosition, width }
  if (inner === 1) contractAlongRows(source, out, outer, length, taps)
  else contractAcrossRows(source, out, outer, length, inner, taps)
  return out
}

/** The taps of all samples in flat arrays, sample i's from i * width, at their stored positions. */
interface Taps {
  count: Int32Array
  weight: Float64Array
  position: Int32Array
  width: number
}

// The two directions are functions of their own: in one function the pass across rows of a
// 256^3 scan took 74-78 ms, on its own 64-74 ms, and the pass along rows 122-153 against 117-128.

function contractAlongRows(source: ArrayLike<number>, out: Float32Array, outer: number, length: number, taps: Taps): void {
  const { count, weight, position, width } = taps
  const samples = count.length
  for (let o = 0; o < outer; o++) {
    const base = o * length
    for (let i = 0; i < samples; i++) {
      const first = i * width
      const last = first + (count[i] as number)
      let sum = 0
      for (let t = first; t < last; t++) sum += (weight[t] as number) * (source[base + (position[t] as number)] as number)
      out[o * samples + i] = sum
    }
  }
}

/** Along a slower axis, whole contiguous rows are weighted and added, which keeps memory access linear. */
function contractAcrossRows(source: ArrayLike<number>, out: Float32Array, outer: number, length: number, inner: number, taps: Taps): void {
  const { count, weight, position, width } = taps
  const samples = count.length
  const sum = new Float64Array(inner)
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < samples; i++) {
      const first = i * width
      const last = first + (count[i] as number)
      if (last === first) continue
      sum.fill(0)
      for (let t = first; t < last; t++) {
        const w = weight[t] as number
        const from = (o * length + (position[t] as number)) * inner
        for (let e = 0; e < inner; e++) sum[e] = (sum[e] as number) + w * (source[from + e] as number)
      }
      out.set(sum, (o * samples + i) * inner)
    }
  }
}

interface AxisWeights {
  /** First source voxel each output sample reads. */
  start: Int32Array
  /** Its weights over consecutive source voxels (empty: the sample is outside, value 0). */
  taps: Float32Array[]
}

/**
 * For each output sample: linear interpolation between the two source voxels around it, each of
 * them Gaussian-blurred as gaussianBlur3d does (scipy's truncate 4, mode 'reflect'), folded into
 * one run of weights over consecutive source voxels.
 */
function axisWeights(count: number, coordinate: (i: number) => number, sourceLength: number, sigma: number): AxisWeights {
  const kernel = sigma > 0.05 ? gaussianKernel(sigma) : Float32Array.of(1)
  const radius = (kernel.length - 1) / 2
  const samples = axisSamples(count, coordinate, sourceLength)
  const start = new Int32Array(count)
  const taps: Float32Array[] = []
  for (let i = 0; i < count; i++) {
    if (!samples.inside[i]) {
      taps.push(new Float32Array(0))
      continue
    }
    const f = samples.index[i] as number
    const w = samples.weight[i] as number
    const dense = new Float64Array(sourceLength)
    const upper = Math.min(f + 1, sourceLength - 1)
    for (let t = -radius; t <= radius; t++) {
      const g = kernel[t + radius] as number
      const below = reflectIndex(f + t, sourceLength)
      const above = reflectIndex(upper + t, sourceLength)
      dense[below] = (dense[below] as number) + (1 - w) * g
      dense[above] = (dense[above] as number) + w * g
    }
    let lo = 0
    while (lo < sourceLength - 1 && dense[lo] === 0) lo++
    let hi = sourceLength - 1
    while (hi > lo && dense[hi] === 0) hi--
    start[i] = lo
    taps.push(Float32Array.from(dense.subarray(lo, hi + 1)))
  }
  return { start, taps }
}

/** Clip to the 0.5th-99.5th percentiles and scale to [0, 1] (numpy's linear percentiles). */
export function normaliseIntensities(grid: Float32Array): Float32Array {
  const [lo, hi0] = percentiles(grid, [0.5, 99.5])
  const hi = hi0 <= lo ? lo + 1 : hi0
  const out = new Float32Array(grid.length)
  const scale = 1 / (hi - lo)
  for (let i = 0; i < grid.length; i++) out[i] = Math.min(1, Math.max(0, ((grid[i] as number) - lo) * scale))
  return out
}

/** Labels on the input's own grid and layout, and how many voxels carry each class. */
export interface GridLabels {
  labels: Uint8Array
  counts: number[]
}

/**
 * Class labels on the input grid, in the stored layout, from per-class probabilities on the model
 * grid ([class][x][y][z]), by trilinear interpolation of the probabilities, so boundaries follow
 * the model's smooth output rather than its 2.5 mm blocks. Where all eight neighbouring grid
 * points agree, their convex combination has the same winner, so only boundary voxels are
 * interpolated; the rest are filled a run at a time. Of the classes, a boundary voxel weighs only
 * those that can win anywhere in its cell (see cellLabels). Each voxel's sum is formed in
 * canonical order, so a permuted or flipped layout gives the same labels, permuted and flipped
 * alike.
 */
export function labelsFromModelGrid(probabilities: Float32Array, classes: number, transform: CanonicalTransform, placement: GridPlacement): GridLabels {
  const n = MODEL_GRID_SIZE
  const cells = n * n * n
  const winner = new Uint8Array(cells)
  for (let v = 0; v < cells; v++) {
    let best = 0
    for (let c = 1; c < classes; c++) if ((probabilities[c * cells + v] as number) > (probabilities[best * cells + v] as number)) best = c
    winner[v] = best
  }
  const { zooms, offsetMm } = placement
  const { size, canonicalOf } = canonicalAxes(transform)
  const canonicalSamples = [0, 1, 2].map((c) =>
    axisSamples(size[c] as number, (i) => (i * (zooms[c] as number) - (offsetMm[c] as number)) / MODEL_GRID_SPACING, n),
  )
  // Per stored axis: the grid sample each stored index falls on.
  const [s0, s1, s2] = [0, 1, 2].map((d) => {
    const samples = canonicalSamples[canonicalOf[d] as number] as AxisSamples
    const position = canonicalIndexAlong(transform, d)
    return {
      index: position.map((u) => samples.index[u] as number),
      weight: Float32Array.from(position, (u) => samples.weight[u] as number),
      inside: Uint8Array.from(position, (u) => samples.inside[u] as number),
    }
  }) as [AxisSamples, AxisSamples, AxisSamples]
  const [c0, c1, c2] = canonicalOf
  const runs = runsOfOneCell(s0)
  const { agreed, contending } = cellLabels(winner, probabilities, classes)
  const gridStride = [n * n, n, 1]
  const [g0, g1, g2] = [gridStride[c0 as number], gridStride[c1 as number], gridStride[c2 as number]] as [number, number, number]
  const [n0, n1, n2] = transform.original.size
  const labels = new Uint8Array(n0 * n1 * n2)
  const counts = new Array<number>(classes).fill(0)
  // Grid index below and above, and weight of the one above, along canonical x, y and z.
  const below = new Int32Array(3)
  const above = new Int32Array(3)
  const frac = new Float32Array(3)
  const corner = new Int32Array(8)
  const cornerProbability = new Float64Array(classes * 8)
  const contenderClass = new Uint8Array(classes)
  const setAxis = (c: number, samples: AxisSamples, t: number) => {
    below[c] = samples.index[t] as number
    above[c] = Math.min((samples.index[t] as number) + 1, n - 1)
    frac[c] = samples.weight[t] as number
  }
  /** The voxels of run r of a row (cells from rowCell) by interpolation, its cell disagreeing. */
  const interpolateRun = (r: number, row: number, rowCell: number) => {
    const first = runs[r] as number
    const end = runs[r + 1] as number
    const cell = rowCell + (s0.index[first] as number) * g0
    setAxis(c0, s0, first)
    for (let q = 0; q < 8; q++) {
      const x = q & 1 ? above[0] : below[0]
      const y = q & 2 ? above[1] : below[1]
      const z = q & 4 ? above[2] : below[2]
      corner[q] = ((x as number) * n + (y as number)) * n + (z as number)
    }
    // The contending classes' probabilities at the eight corners, gathered once for the run.
    const candidates = contending[cell] as number
    let contenders = 0
    for (let c = 0; c < classes; c++) {
      if ((candidates & (1 << c)) === 0) continue
      for (let q = 0; q < 8; q++) cornerProbability[contenders * 8 + q] = probabilities[c * cells + (corner[q] as number)] as number
      contenderClass[contenders++] = c
    }
    for (let t0 = first; t0 < end; t0++) {
      frac[c0] = s0.weight[t0] as number
      const wx = frac[0] as number
      const wy = frac[1] as number
      const wz = frac[2] as number
      // Rounded to float32, as the weights always were, so that labels do not move by a rounding.
      const w0 = Math.fround((1 - wx) * (1 - wy) * (1 - wz))
      const w1 = Math.fround(wx * (1 - wy) * (1 - wz))
      const w2 = Math.fround((1 - wx) * wy * (1 - wz))
      const w3 = Math.fround(wx * wy * (1 - wz))
      const w4 = Math.fround((1 - wx) * (1 - wy) * wz)
      const w5 = Math.fround(wx * (1 - wy) * wz)
      const w6 = Math.fround((1 - wx) * wy * wz)
      const w7 = Math.fround(wx * wy * wz)
      let best = 0
      let bestP = -1
      for (let k = 0; k < contenders; k++) {
        const o = k * 8
        const p =
          w0 * (cornerProbability[o] as number) +
          w1 * (cornerProbability[o + 1] as number) +
          w2 * (cornerProbability[o + 2] as number) +
          w3 * (cornerProbability[o + 3] as number) +
          w4 * (cornerProbability[o + 4] as number) +
          w5 * (cornerProbability[o + 5] as number) +
          w6 * (cornerProbability[o + 6] as number) +
          w7 * (cornerProbability[o + 7] as number)
        if (p > bestP) {
          bestP = p
          best = contenderClass[k] as number
        }
      }
      labels[row + t0] = best
      counts[best] = (counts[best] as number) + 1
    }
  }
  // Stored rows that fall in the same row of grid cells share every label their cells agree on
  // (at 1 mm about six rows share a row of 2.5 mm cells). The first of them is labelled run by
  // run; each later one starts as a copy of it, and only its runs in disagreeing cells are
  // interpolated again.
  const templateRow = new Int32Array(n * n).fill(-1)
  const templateCounts = new Int32Array(n * n * classes)
  const templateBoundary: Int32Array[] = []
  const boundary = new Int32Array(runs.length / 2)
  for (let t2 = 0; t2 < n2; t2++) {
    if (!s2.inside[t2]) continue
    setAxis(c2, s2, t2)
    for (let t1 = 0; t1 < n1; t1++) {
      if (!s1.inside[t1]) continue
      setAxis(c1, s1, t1)
      const row = n0 * (t1 + n1 * t2)
      const rowCell = (s1.index[t1] as number) * g1 + (s2.index[t2] as number) * g2
      const key = (s1.index[t1] as number) * n + (s2.index[t2] as number)
      const template = templateRow[key] as number
      if (template >= 0) {
        labels.copyWithin(row, template, template + n0)
        for (let c = 0; c < classes; c++) counts[c] = (counts[c] as number) + (templateCounts[key * classes + c] as number)
        for (const r of templateBoundary[key] as Int32Array) interpolateRun(r, row, rowCell)
        continue
      }
      let boundaries = 0
      for (let r = 0; r < runs.length; r += 2) {
        const first = runs[r] as number
        const end = runs[r + 1] as number
        const label = agreed[rowCell + (s0.index[first] as number) * g0] as number
        if (label === DISAGREE) {
          boundary[boundaries++] = r
          interpolateRun(r, row, rowCell)
          continue
        }
        for (let t0 = first; t0 < end; t0++) labels[row + t0] = label
        templateCounts[key * classes + label] = (templateCounts[key * classes + label] as number) + end - first
      }
      for (let c = 0; c < classes; c++) counts[c] = (counts[c] as number) + (templateCounts[key * classes + c] as number)
      templateRow[key] = row
      templateBoundary[key] = boundary.slice(0, boundaries)
    }
  }
  // Voxels outside the model grid stay background.
  counts[0] = labels.length - counts.reduce((sum, count, c) => (c === 0 ? sum : sum + count), 0)
  return { labels, counts }
}

const DISAGREE = 255

/**
 * For each grid cell (grid point and the next along each axis, clamped at the edge), the label
 * all eight corners share, or DISAGREE; and for each cell that disagrees, a bit per class that
 * can win somewhere in it. An interpolated probability lies between the least and the greatest
 * of its class at the eight corners (the weights are at least 0 and sum to 1, up to float32
 * rounding), so a class whose greatest is below another's least loses everywhere in the cell
 * and need not be summed.
 */
function cellLabels(winner: Uint8Array, probabilities: Float32Array, classes: number): { agreed: Uint8Array; contending: Uint8Array } {
  const n = MODEL_GRID_SIZE
  const cells = n * n * n
  /** Far above the rounding of eight float32 weights, far below any difference that decides a label. */
  const SLACK = 1e-5
  const agreed = new Uint8Array(cells)
  const contending = new Uint8Array(cells)
  const corner = new Int32Array(8)
  const greatest = new Float64Array(classes)
  for (let i = 0; i < n; i++) {
    const di = i < n - 1 ? n * n : 0
    for (let j = 0; j < n; j++) {
      const dj = j < n - 1 ? n : 0
      for (let k = 0; k < n; k++) {
        const v = (i * n + j) * n + k
        const dk = k < n - 1 ? 1 : 0
        corner[0] = v
        corner[1] = v + dk
        corner[2] = v + dj
        corner[3] = v + dj + dk
        corner[4] = v + di
        corner[5] = v + di + dk
        corner[6] = v + di + dj
        corner[7] = v + di + dj + dk
        const label = winner[v] as number
        let same = true
        for (let q = 1; q < 8 && same; q++) same = winner[corner[q] as number] === label
        if (same) {
          agreed[v] = label
          continue
        }
        agreed[v] = DISAGREE
        let floor = -Infinity
        for (let c = 0; c < classes; c++) {
          let lo = Infinity
          let hi = -Infinity
          for (let q = 0; q < 8; q++) {
            const p = probabilities[c * cells + (corner[q] as number)] as number
            if (p < lo) lo = p
            if (p > hi) hi = p
          }
          greatest[c] = hi
          if (lo > floor) floor = lo
        }
        let mask = 0
        for (let c = 0; c < classes; c++) if ((greatest[c] as number) >= floor - SLACK) mask |= 1 << c
        contending[v] = mask
      }
    }
  }
  return { agreed, contending }
}

/** [start, end) pairs of consecutive inside indices that fall in the same grid cell. */
function runsOfOneCell(samples: AxisSamples): Int32Array {
  const runs: number[] = []
  const length = samples.index.length
  for (let t = 0; t < length; ) {
    if (!samples.inside[t]) {
      t++
      continue
    }
    const start = t
    while (t < length && samples.inside[t] && samples.index[t] === samples.index[start]) t++
    runs.push(start, t)
  }
  return Int32Array.from(runs)
}

interface AxisSamples {
  index: Int32Array
  weight: Float32Array
  inside: Uint8Array
}

/** For each of `count` output positions, the source voxel below it and the weight of the one above. */
function axisSamples(count: number, coordinate: (i: number) => number, sourceLength: number): AxisSamples {
  const index = new Int32Array(count)
  const weight = new Float32Array(count)
  const inside = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    const c = coordinate(i)
    // Outside the source the value is 0 (background), like scipy's mode='constant'.
    if (c < 0 || c > sourceLength - 1) continue
    const f = Math.min(Math.floor(c), Math.max(sourceLength - 2, 0))
    index[i] = f
    weight[i] = c - f
    inside[i] = 1
  }
  return { index, weight, inside }
}

/**
 * Mean of each block of factor voxels (canonical axes) of the stored voxels. Sums are in double
 * precision, exact for integer voxels, so the means do not depend on the order voxels come in.
 */
function blockMean(data: VoxelArray, transform: CanonicalTransform, factor: Vec3, small: Vec3): Float32Array {
  const { canonicalOf } = canonicalAxes(transform)
  const blockStride = [1, small[0], small[0] * small[1]]
  // Per stored axis: the offset, among the blocks, that each stored index contributes.
  const [b0, b1, b2] = [0, 1, 2].map((d) => {
    const c = canonicalOf[d] as number
    return canonicalIndexAlong(transform, d).map((u) => Math.floor(u / (factor[c] as number)) * (blockStride[c] as number))
  }) as [Int32Array, Int32Array, Int32Array]
  const [n0, n1, n2] = transform.original.size
  // Consecutive voxels of a row that share a block are summed first and added to it once.
  const runs: number[] = []
  for (let t0 = 0; t0 < n0; ) {
    const start = t0
    while (t0 < n0 && b0[t0] === b0[start]) t0++
    runs.push(start, t0)
  }
  const sum = new Float64Array(small[0] * small[1] * small[2])
  for (let t2 = 0; t2 < n2; t2++) {
    for (let t1 = 0; t1 < n1; t1++) {
      const rowBlock = (b1[t1] as number) + (b2[t2] as number)
      const row = n0 * (t1 + n1 * t2)
      for (let r = 0; r < runs.length; r += 2) {
        const start = runs[r] as number
        const end = runs[r + 1] as number
        let s = 0
        for (let v = row + start; v < row + end; v++) s += data[v] as number
        const b = rowBlock + (b0[start] as number)
        sum[b] = (sum[b] as number) + s
      }
    }
  }
  // Voxels per block along each canonical axis: f, or fewer in the last block.
  const { size } = canonicalAxes(transform)
  const [cx, cy, cz] = [0, 1, 2].map((c) =>
    Float64Array.from({ length: small[c] as number }, (_, b) => Math.min(factor[c] as number, (size[c] as number) - b * (factor[c] as number))),
  ) as [Float64Array, Float64Array, Float64Array]
  const [sx, sy, sz] = small
  const mean = new Float32Array(sum.length)
  for (let z = 0, i = 0; z < sz; z++) for (let y = 0; y < sy; y++) for (let x = 0; x < sx; x++, i++) mean[i] = (sum[i] as number) / ((cx[x] as number) * (cy[y] as number) * (cz[z] as number))
  return mean
}

/**
 * numpy's linear percentiles. Only four order statistics are needed, so they are selected
 * (quickselect, linear time) rather than the whole array sorted; the values are the same.
 */
export function percentiles(values: Float32Array, ps: [number, number]): [number, number] {
  const work = values.slice()
  // NaN breaks the comparisons selection relies on; sorting puts it last, as before.
  const sorted = work.some(Number.isNaN) ? work.sort() : undefined
  const at = (p: number) => {
    const position = (p / 100) * (work.length - 1)
    const lower = Math.floor(position)
    const upper = Math.min(lower + 1, work.length - 1)
    const below = sorted === undefined ? select(work, lower) : (sorted[lower] as number)
    const above = sorted === undefined ? (upper === lower ? below : minimumFrom(work, upper)) : (sorted[upper] as number)
    return below + (above - below) * (position - lower)
  }
  return [at(ps[0]), at(ps[1])]
}

/** The k-th smallest value; afterwards every value from k on is at least it. */
function select(values: Float32Array, k: number): number {
  let lo = 0
  let hi = values.length - 1
  while (hi > lo) {
    const middle = (lo + hi) >> 1
    // Median of three as the pivot keeps sorted and constant runs from going quadratic.
    const [a, b, c] = [values[lo] as number, values[middle] as number, values[hi] as number]
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b
    let i = lo
    let j = hi
    while (i <= j) {
      while ((values[i] as number) < pivot) i++
      while ((values[j] as number) > pivot) j--
      if (i <= j) {
        const t = values[i] as number
        values[i] = values[j] as number
        values[j] = t
        i++
        j--
      }
    }
    if (k <= j) hi = j
    else if (k >= i) lo = i
    else break
  }
  return values[k] as number
}

function minimumFrom(values: Float32Array, from: number): number {
  let min = Infinity
  for (let i = from; i < values.length; i++) if ((values[i] as number) < min) min = values[i] as number
  return min
}

/** Bounding box [min, max] per axis of the largest 6-connected component above `threshold`. */
function largestComponent(data: Float32Array, size: Vec3, threshold: number): Array<[number, number]> | undefined {
  const [nx, ny, nz] = size
  const seen = new Uint8Array(data.length)
  const stack = new Int32Array(data.length)
  let best: Array<[number, number]> | undefined
  let bestCount = 0
  for (let start = 0; start < data.length; start++) {
    if (seen[start] || (data[start] as number) <= threshold) continue
    let top = 0
    stack[top++] = start
    seen[start] = 1
    let count = 0
    const box: Array<[number, number]> = [
      [Infinity, -Infinity],
      [Infinity, -Infinity],
      [Infinity, -Infinity],
    ]
    while (top > 0) {
      const v = stack[--top] as number
      count++
      const x = v % nx
      const y = Math.floor(v / nx) % ny
      const z = Math.floor(v / (nx * ny))
      const coords = [x, y, z]
      for (let a = 0; a < 3; a++) {
        const b = box[a] as [number, number]
        b[0] = Math.min(b[0], coords[a] as number)
        b[1] = Math.max(b[1], coords[a] as number)
      }
      const neighbours = [x > 0 ? v - 1 : -1, x < nx - 1 ? v + 1 : -1, y > 0 ? v - nx : -1, y < ny - 1 ? v + nx : -1, z > 0 ? v - nx * ny : -1, z < nz - 1 ? v + nx * ny : -1]
      for (const w of neighbours) {
        if (w < 0 || seen[w] || (data[w] as number) <= threshold) continue
        seen[w] = 1
        stack[top++] = w
      }
    }
    if (count > bestCount) {
      bestCount = count
      best = box
    }
  }
  return best
}
