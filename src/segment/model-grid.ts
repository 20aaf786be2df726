/**
 * The model sees every head on one grid: canonical RAS voxel axes, 2.5 mm isotropic, 96^3,
 * centred on the head, intensities scaled to [0, 1] by percentiles. These functions mirror
 * models/train/common.py step for step, because a model is only as good as the match between
 * what it was trained on and what it is given.
 */
import type { Vec3 } from '../io/volume.js'
import { gaussianBlur3d, gaussianKernel, reflectIndex } from './gaussian-blur.js'

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
 * Centre of the bounding box of the head (the largest bright connected blob). Computed on
 * blocks of about 4 mm: the centre only needs to be good to a few mm, which training covers with
 * random shifts, and full resolution would cost a second on a 256^3 volume.
 */
export function headCentreMm(data: Float32Array, size: Vec3, zooms: Vec3): Vec3 {
  const factor = zooms.map((z) => Math.max(1, Math.floor(4 / z))) as Vec3
  const small = size.map((n, i) => Math.ceil(n / (factor[i] as number))) as Vec3
  const blocks = blockMean(data, size, factor, small)
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

/**
 * Trilinear sampling onto the model grid, after a Gaussian pre-filter when downsampling. The
 * result is laid out [x][y][z] with z fastest, as the network's (N, C, X, Y, Z) input expects.
 *
 * Blur and interpolation are both separable and linear, so each axis is one small weight matrix
 * (output sample x source voxel) and the resampling is three contractions, one per axis. That
 * gives exactly the blurred-then-sampled values without blurring the voxels no sample reads: on a
 * 256^3 input it is several times quicker than blurring the whole volume first.
 */
export function resampleToModelGrid(data: Float32Array, size: Vec3, placement: GridPlacement): Float32Array {
  const { zooms, offsetMm } = placement
  const n = MODEL_GRID_SIZE
  const [wx, wy, wz] = [0, 1, 2].map((a) => {
    const zoom = zooms[a] as number
    const sigma = Math.max(MODEL_GRID_SPACING / zoom - 1, 0) * 0.5
    return axisWeights(n, (i) => ((offsetMm[a] as number) + i * MODEL_GRID_SPACING) / zoom, size[a] as number, sigma)
  }) as [AxisWeights, AxisWeights, AxisWeights]
  const [nx, ny, nz] = size
  // x contracted: alongX[(z * ny + y) * n + i]
  const alongX = new Float32Array(nz * ny * n)
  for (let row = 0; row < ny * nz; row++) {
    const base = row * nx
    for (let i = 0; i < n; i++) {
      const start = wx.start[i] as number
      const taps = wx.taps[i] as Float32Array
      let sum = 0
      for (let t = 0; t < taps.length; t++) sum += (taps[t] as number) * (data[base + start + t] as number)
      alongX[row * n + i] = sum
    }
  }
  // y contracted: alongY[(z * n + j) * n + i]
  const alongY = new Float32Array(nz * n * n)
  for (let z = 0; z < nz; z++) {
    for (let j = 0; j < n; j++) {
      const target = (z * n + j) * n
      const start = wy.start[j] as number
      const taps = wy.taps[j] as Float32Array
      for (let t = 0; t < taps.length; t++) {
        const w = taps[t] as number
        const source = (z * ny + start + t) * n
        for (let i = 0; i < n; i++) alongY[target + i] = (alongY[target + i] as number) + w * (alongX[source + i] as number)
      }
    }
  }
  // z contracted, into [x][y][z] order
  const out = new Float32Array(n * n * n)
  for (let k = 0; k < n; k++) {
    const start = wz.start[k] as number
    const taps = wz.taps[k] as Float32Array
    for (let t = 0; t < taps.length; t++) {
      const w = taps[t] as number
      const plane = (start + t) * n * n
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < n; i++) out[(i * n + j) * n + k] = (out[(i * n + j) * n + k] as number) + w * (alongY[plane + j * n + i] as number)
      }
    }
  }
  return out
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

/**
 * Class labels on the canonical input grid from per-class probabilities on the model grid
 * ([class][x][y][z]), by trilinear interpolation of the probabilities, so boundaries follow the
 * model's smooth output rather than its 2.5 mm blocks. Where all eight neighbouring grid points
 * agree, their convex combination has the same winner, so only boundary voxels are interpolated.
 */
export function labelsFromModelGrid(probabilities: Float32Array, classes: number, size: Vec3, placement: GridPlacement): Uint8Array {
  const n = MODEL_GRID_SIZE
  const cells = n * n * n
  const winner = new Uint8Array(cells)
  for (let v = 0; v < cells; v++) {
    let best = 0
    for (let c = 1; c < classes; c++) if ((probabilities[c * cells + v] as number) > (probabilities[best * cells + v] as number)) best = c
    winner[v] = best
  }
  const { zooms, offsetMm } = placement
  const axes = [0, 1, 2].map((a) =>
    axisSamples(size[a] as number, (i) => (i * (zooms[a] as number) - (offsetMm[a] as number)) / MODEL_GRID_SPACING, n),
  )
  const [ax, ay, az] = axes as [AxisSamples, AxisSamples, AxisSamples]
  const [nx, ny, nz] = size
  const labels = new Uint8Array(nx * ny * nz)
  const corner = new Int32Array(8)
  const weight = new Float32Array(8)
  for (let z = 0; z < nz; z++) {
    if (!az.inside[z]) continue
    const k0 = az.index[z] as number
    const k1 = Math.min(k0 + 1, n - 1)
    const wz = az.weight[z] as number
    for (let y = 0; y < ny; y++) {
      if (!ay.inside[y]) continue
      const j0 = ay.index[y] as number
      const j1 = Math.min(j0 + 1, n - 1)
      const wy = ay.weight[y] as number
      const row = nx * (y + ny * z)
      // Whether the eight neighbours agree depends only on the grid cell, which spans several
      // input voxels along x, so it is worked out once per cell.
      let cell = -1
      let cellLabel = -1
      for (let x = 0; x < nx; x++) {
        if (!ax.inside[x]) continue
        const i0 = ax.index[x] as number
        const wx = ax.weight[x] as number
        if (i0 !== cell) {
          cell = i0
          const i1 = Math.min(i0 + 1, n - 1)
          corner[0] = (i0 * n + j0) * n + k0
          corner[1] = (i1 * n + j0) * n + k0
          corner[2] = (i0 * n + j1) * n + k0
          corner[3] = (i1 * n + j1) * n + k0
          corner[4] = (i0 * n + j0) * n + k1
          corner[5] = (i1 * n + j0) * n + k1
          corner[6] = (i0 * n + j1) * n + k1
          corner[7] = (i1 * n + j1) * n + k1
          const first = winner[corner[0] as number] as number
          let agree = true
          for (let q = 1; q < 8 && agree; q++) agree = winner[corner[q] as number] === first
          cellLabel = agree ? first : -1
        }
        if (cellLabel >= 0) {
          labels[row + x] = cellLabel
          continue
        }
        weight[0] = (1 - wx) * (1 - wy) * (1 - wz)
        weight[1] = wx * (1 - wy) * (1 - wz)
        weight[2] = (1 - wx) * wy * (1 - wz)
        weight[3] = wx * wy * (1 - wz)
        weight[4] = (1 - wx) * (1 - wy) * wz
        weight[5] = wx * (1 - wy) * wz
        weight[6] = (1 - wx) * wy * wz
        weight[7] = wx * wy * wz
        let best = 0
        let bestP = -1
        for (let c = 0; c < classes; c++) {
          let p = 0
          for (let q = 0; q < 8; q++) p += (weight[q] as number) * (probabilities[c * cells + (corner[q] as number)] as number)
          if (p > bestP) {
            bestP = p
            best = c
          }
        }
        labels[row + x] = best
      }
    }
  }
  return labels
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

function blockMean(data: Float32Array, size: Vec3, factor: Vec3, small: Vec3): Float32Array {
  const [nx, ny, nz] = size
  const [fx, fy, fz] = factor
  const [sx, sy] = small
  const sum = new Float32Array(small[0] * small[1] * small[2])
  const count = new Float32Array(sum.length)
  for (let z = 0; z < nz; z++) {
    const bz = Math.floor(z / fz)
    for (let y = 0; y < ny; y++) {
      const by = Math.floor(y / fy)
      const row = nx * (y + ny * z)
      const blockRow = sx * (by + sy * bz)
      for (let x = 0; x < nx; x++) {
        const b = blockRow + Math.floor(x / fx)
        sum[b] = (sum[b] as number) + (data[row + x] as number)
        count[b] = (count[b] as number) + 1
      }
    }
  }
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) / Math.max(1, count[i] as number)
  return sum
}

export function percentiles(values: Float32Array, ps: [number, number]): [number, number] {
  const sorted = values.slice().sort()
  const at = (p: number) => {
    const position = (p / 100) * (sorted.length - 1)
    const lower = Math.floor(position)
    const upper = Math.min(lower + 1, sorted.length - 1)
    return (sorted[lower] as number) + ((sorted[upper] as number) - (sorted[lower] as number)) * (position - lower)
  }
  return [at(ps[0]), at(ps[1])]
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
