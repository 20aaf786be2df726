/**
 * The model sees every head on one grid: canonical RAS voxel axes, 2.5 mm isotropic, 96^3,
 * centred on the head, intensities scaled to [0, 1] by percentiles. These functions mirror
 * models/train/common.py step for step, because a model is only as good as the match between
 * what it was trained on and what it is given.
 */
import type { Vec3 } from '../io/volume.js'
import { gaussianBlur3d } from './gaussian-blur.js'

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
 */
export function resampleToModelGrid(data: Float32Array, size: Vec3, placement: GridPlacement): Float32Array {
  const { zooms, offsetMm } = placement
  const sigma = zooms.map((z) => Math.max(MODEL_GRID_SPACING / z - 1, 0) * 0.5) as Vec3
  const source = sigma.some((s) => s > 0.05) ? gaussianBlur3d(data, size, sigma) : data
  const n = MODEL_GRID_SIZE
  const axes = [0, 1, 2].map((a) => axisSamples(n, (i) => ((offsetMm[a] as number) + i * MODEL_GRID_SPACING) / (zooms[a] as number), size[a] as number))
  const [ax, ay, az] = axes as [AxisSamples, AxisSamples, AxisSamples]
  const [nx, ny] = size
  const out = new Float32Array(n * n * n)
  for (let i = 0; i < n; i++) {
    if (!ax.inside[i]) continue
    const x0 = ax.index[i] as number
    const wx = ax.weight[i] as number
    const x1 = Math.min(x0 + 1, size[0] - 1)
    for (let j = 0; j < n; j++) {
      if (!ay.inside[j]) continue
      const y0 = ay.index[j] as number
      const wy = ay.weight[j] as number
      const y1 = Math.min(y0 + 1, size[1] - 1)
      for (let k = 0; k < n; k++) {
        if (!az.inside[k]) continue
        const z0 = az.index[k] as number
        const wz = az.weight[k] as number
        const z1 = Math.min(z0 + 1, size[2] - 1)
        const r00 = nx * (y0 + ny * z0)
        const r10 = nx * (y1 + ny * z0)
        const r01 = nx * (y0 + ny * z1)
        const r11 = nx * (y1 + ny * z1)
        const c00 = (source[r00 + x0] as number) * (1 - wx) + (source[r00 + x1] as number) * wx
        const c10 = (source[r10 + x0] as number) * (1 - wx) + (source[r10 + x1] as number) * wx
        const c01 = (source[r01 + x0] as number) * (1 - wx) + (source[r01 + x1] as number) * wx
        const c11 = (source[r11 + x0] as number) * (1 - wx) + (source[r11 + x1] as number) * wx
        out[(i * n + j) * n + k] = (c00 * (1 - wy) + c10 * wy) * (1 - wz) + (c01 * (1 - wy) + c11 * wy) * wz
      }
    }
  }
  return out
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
