/**
 * Exact Euclidean distance, in mm, from every voxel to the nearest voxel of a mask, on
 * anisotropic grids (Felzenszwalb and Huttenlocher's separable lower-envelope algorithm). The
 * brain's safety margin is a distance, and a voxel-count dilation would make it depend on the
 * scan's resolution and on the axis.
 *
 * Callers only ever ask how a voxel compares with a few millimetres, so distances beyond
 * `withinMm` come back as Infinity: lines with nothing within reach are then skipped, which
 * makes the transform of a 256^3 face region several times quicker. Within reach it is exact.
 */
import type { Vec3 } from '../io/volume.js'
import { voxelCount } from '../io/volume.js'
import { boxAround, crop, grow, paste } from './voxel-box.js'

export function distanceToMaskMm(mask: Uint8Array, size: Vec3, spacing: Vec3, withinMm = Infinity): Float32Array {
  // Beyond the mask's bounding box grown by the reach every distance is out of reach, so only
  // that box is transformed (the brain fills part of a face region's box, for instance).
  if (!Number.isFinite(withinMm)) return transform(mask, size, spacing, withinMm)
  const maskBox = boxAround(mask, size, (v) => v !== 0)
  if (maskBox === undefined) return new Float32Array(mask.length).fill(Infinity)
  const box = grow(maskBox, size, spacing.map((s) => Math.ceil(withinMm / s) + 1) as Vec3)
  if (box.size.every((n, a) => n === size[a])) return transform(mask, size, spacing, withinMm)
  const local = transform(crop(mask, size, box, new Uint8Array(voxelCount(box.size))), box.size, spacing, withinMm)
  const out = new Float32Array(mask.length).fill(Infinity)
  paste(local, box, out, size)
  return out
}

function transform(mask: Uint8Array, size: Vec3, spacing: Vec3, withinMm: number): Float32Array {
  const reach = withinMm * withinMm
  const squared = new Float32Array(mask.length)
  alongRows(mask, squared, size[0], spacing[0], reach)
  const strides = [1, size[0], size[0] * size[1]]
  const reachVoxels = spacing.map((s) => (Number.isFinite(withinMm) ? Math.ceil(withinMm / s) + 1 : Infinity))
  for (const axis of [1, 2]) {
    const n = size[axis] as number
    const stride = strides[axis] as number
    const s = spacing[axis] as number
    const line = new Float64Array(n)
    const out = new Float64Array(n)
    const hull = new Int32Array(n)
    const bounds = new Float64Array(n + 1)
    const [u, v] = [0, 1, 2].filter((a) => a !== axis) as [number, number]
    for (let b = 0; b < (size[v] as number); b++) {
      for (let a = 0; a < (size[u] as number); a++) {
        const base = a * (strides[u] as number) + b * (strides[v] as number)
        let first = n
        let last = -1
        for (let i = 0; i < n; i++) {
          const value = squared[base + i * stride] as number
          line[i] = value
          if (value !== Infinity) {
            if (first === n) first = i
            last = i
          }
        }
        // Nothing within reach on this line: every distance on it stays beyond reach.
        if (last < 0) continue
        // Nor is anything further than the reach from the first and last value within it.
        const from = Math.max(0, first - (reachVoxels[axis] as number))
        const to = Math.min(n - 1, last + (reachVoxels[axis] as number))
        lowerEnvelope(line, out, hull, bounds, s, first, last, from, to)
        for (let i = 0; i < n; i++) {
          const value = i < from || i > to ? Infinity : (out[i] as number)
          squared[base + i * stride] = value > reach ? Infinity : value
        }
      }
    }
  }
  const distance = squared
  for (let i = 0; i < distance.length; i++) distance[i] = Math.sqrt(distance[i] as number)
  return distance
}

/** The first axis, where each row only needs its nearest mask voxel on either side. */
function alongRows(mask: Uint8Array, squared: Float32Array, n: number, spacing: number, reach: number): void {
  const s2 = spacing * spacing
  for (let base = 0; base < mask.length; base += n) {
    let last = -Infinity
    for (let i = 0; i < n; i++) {
      if (mask[base + i]) last = i
      const d = (i - last) * (i - last) * s2
      squared[base + i] = d > reach ? Infinity : d
    }
    last = Infinity
    for (let i = n - 1; i >= 0; i--) {
      if (mask[base + i]) last = i
      const d = (last - i) * (last - i) * s2
      if (d < (squared[base + i] as number)) squared[base + i] = d
    }
  }
}

/**
 * out[p] = min over q of f[q] + ((p - q) * spacing)^2, for p from `from` to `to`; f is finite
 * only from `first` to `last`.
 */
function lowerEnvelope(f: Float64Array, out: Float64Array, hull: Int32Array, bounds: Float64Array, spacing: number, first: number, last: number, from: number, to: number): void {
  const s2 = spacing * spacing
  let k = -1
  for (let q = first; q <= last; q++) {
    if (!Number.isFinite(f[q] as number)) continue
    // Where the parabola from q overtakes the last one on the hull, in units of voxels.
    while (k >= 0) {
      const p = hull[k] as number
      const crossing = ((f[q] as number) + s2 * q * q - ((f[p] as number) + s2 * p * p)) / (2 * s2 * (q - p))
      if (crossing <= (bounds[k] as number)) k--
      else {
        k++
        hull[k] = q
        bounds[k] = crossing
        break
      }
    }
    if (k < 0) {
      k = 0
      hull[0] = q
      bounds[0] = -Infinity
    }
  }
  bounds[k + 1] = Infinity
  let j = 0
  for (let p = from; p <= to; p++) {
    while ((bounds[j + 1] as number) < p) j++
    const q = hull[j] as number
    out[p] = s2 * (p - q) * (p - q) + (f[q] as number)
  }
}
