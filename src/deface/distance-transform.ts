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

export function distanceToMaskMm(mask: Uint8Array, size: Vec3, spacing: Vec3, withinMm = Infinity): Float32Array {
  // Beyond the mask's bounding box grown by the reach every distance is out of reach, so only
  // that box is transformed (the brain fills part of a face region's box, for instance).
  const box = Number.isFinite(withinMm) ? reachableBox(mask, size, spacing, withinMm) : { start: [0, 0, 0] as Vec3, size }
  if (box === undefined) return new Float32Array(mask.length).fill(Infinity)
  if (box.size.every((n, a) => n === size[a])) return transform(mask, size, spacing, withinMm)
  const local = transform(cropBox(mask, size, box), box.size, spacing, withinMm)
  const out = new Float32Array(mask.length).fill(Infinity)
  const [bx, by, bz] = box.size
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const from = bx * (y + by * z)
      out.set(local.subarray(from, from + bx), box.start[0] + size[0] * (box.start[1] + y + size[1] * (box.start[2] + z)))
    }
  }
  return out
}

/** The bounding box of the mask grown by `withinMm` (and a voxel), within the volume; undefined for an empty mask. */
function reachableBox(mask: Uint8Array, size: Vec3, spacing: Vec3, withinMm: number): { start: Vec3; size: Vec3 } | undefined {
  const [nx, ny, nz] = size
  const min: Vec3 = [nx, ny, nz]
  const max: Vec3 = [-1, -1, -1]
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++, i += nx) {
      let first = -1
      let last = -1
      for (let x = 0; x < nx; x++) {
        if (!mask[i + x]) continue
        if (first < 0) first = x
        last = x
      }
      if (first < 0) continue
      min[0] = Math.min(min[0], first)
      max[0] = Math.max(max[0], last)
      min[1] = Math.min(min[1], y)
      max[1] = Math.max(max[1], y)
      min[2] = Math.min(min[2], z)
      max[2] = Math.max(max[2], z)
    }
  }
  if (max[0] < 0) return undefined
  const grow = spacing.map((s) => Math.ceil(withinMm / s) + 1)
  const start = min.map((m, a) => Math.max(0, m - (grow[a] as number))) as Vec3
  const end = max.map((m, a) => Math.min((size[a] as number) - 1, m + (grow[a] as number))) as Vec3
  return { start, size: end.map((e, a) => e - (start[a] as number) + 1) as Vec3 }
}

function cropBox(mask: Uint8Array, size: Vec3, box: { start: Vec3; size: Vec3 }): Uint8Array {
  const [bx, by, bz] = box.size
  const out = new Uint8Array(bx * by * bz)
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const from = box.start[0] + size[0] * (box.start[1] + y + size[1] * (box.start[2] + z))
      out.set(mask.subarray(from, from + bx), bx * (y + by * z))
    }
  }
  return out
}

function transform(mask: Uint8Array, size: Vec3, spacing: Vec3, withinMm: number): Float32Array {
  const reach = withinMm * withinMm
  const squared = new Float32Array(mask.length)
  alongRows(mask, squared, size[0], spacing[0], reach)
  const strides = [1, size[0], size[0] * size[1]]
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
        let any = false
        for (let i = 0; i < n; i++) {
          const value = squared[base + i * stride] as number
          line[i] = value
          if (value !== Infinity) any = true
        }
        // Nothing within reach on this line: every distance on it stays beyond reach.
        if (!any) continue
        lowerEnvelope(line, out, hull, bounds, s)
        for (let i = 0; i < n; i++) {
          const value = out[i] as number
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

/** out[p] = min over q of f[q] + ((p - q) * spacing)^2. */
function lowerEnvelope(f: Float64Array, out: Float64Array, hull: Int32Array, bounds: Float64Array, spacing: number): void {
  const n = f.length
  const s2 = spacing * spacing
  let k = -1
  for (let q = 0; q < n; q++) {
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
  for (let p = 0; p < n; p++) {
    while ((bounds[j + 1] as number) < p) j++
    const q = hull[j] as number
    out[p] = s2 * (p - q) * (p - q) + (f[q] as number)
  }
}
