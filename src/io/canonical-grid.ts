/**
 * The model and the renderer work on one voxel layout whatever the scanner wrote: axis 0 towards
 * the patient's right, axis 1 anterior, axis 2 superior (RAS). Getting there is only a
 * permutation and flips of the voxel axes, never a resampling, so the way back is exact. Any
 * residual obliquity stays in the canonical volume's direction matrix.
 */
import type { Geometry, Mat3, Vec3, Volume, VoxelArray } from './volume.js'
import { allocateVoxels, geometryOf, pixelTypeOf } from './volume.js'
import { nearestAxes } from './orientation.js'
import { mat3Vec3 } from './matrix.js'

export interface CanonicalTransform {
  /** Canonical axis i is original voxel axis `axes[i]`. */
  axes: [number, number, number]
  /** Canonical axis i runs opposite to its original axis. */
  flipped: [boolean, boolean, boolean]
  /** The geometry of the volume before the transform, restored exactly on the way back. */
  original: Geometry
}

export function canonicalTransformOf(geometry: Geometry): CanonicalTransform {
  const nearest = nearestAxes(geometry.direction)
  const axes: [number, number, number] = [0, 0, 0]
  const flipped: [boolean, boolean, boolean] = [false, false, false]
  nearest.forEach(({ axis, sign }, voxelAxis) => {
    axes[axis] = voxelAxis
    flipped[axis] = sign < 0
  })
  return { axes, flipped, original: geometryOf(geometry) }
}

export function canonicalGeometry(transform: CanonicalTransform): Geometry {
  const { axes, flipped, original } = transform
  const size = axes.map((a) => original.size[a] as number) as Vec3
  const spacing = axes.map((a) => original.spacing[a] as number) as Vec3
  const direction = new Array<number>(9).fill(0)
  for (let c = 0; c < 3; c++) {
    const a = axes[c] as number
    const sign = flipped[c] ? -1 : 1
    for (let r = 0; r < 3; r++) direction[r * 3 + c] = sign * (original.direction[r * 3 + a] as number)
  }
  // The canonical first voxel is the original voxel at the far end of every flipped axis.
  const start = [0, 0, 0]
  axes.forEach((a, c) => {
    if (flipped[c]) start[a] = (original.size[a] as number) - 1
  })
  const offset = mat3Vec3(original.direction, start.map((s, i) => s * (original.spacing[i] as number)) as Vec3)
  const origin = original.origin.map((o, i) => o + offset[i]!) as Vec3
  return { size, spacing, origin, direction: direction as Mat3 }
}

export function toCanonical(volume: Volume): { volume: Volume; transform: CanonicalTransform } {
  const transform = canonicalTransformOf(volume)
  const geometry = canonicalGeometry(transform)
  const data = toCanonicalVoxels(volume.data, transform)
  return { volume: { ...volume, ...geometry, data, pixelType: pixelTypeOf(data) }, transform }
}

export function fromCanonical(volume: Volume, transform: CanonicalTransform): Volume {
  const data = fromCanonicalVoxels(volume.data, transform)
  return { ...volume, ...geometryOf(transform.original), data, pixelType: pixelTypeOf(data) }
}

/** Reorders any per-voxel array (intensities, labels, probabilities) into the canonical layout. */
export function toCanonicalVoxels<T extends VoxelArray>(data: T, transform: CanonicalTransform): T {
  const out = allocateVoxels(pixelTypeOf(data), data.length) as T
  reorder(data, out, transform, true)
  return out
}

/** The exact inverse of toCanonicalVoxels. */
export function fromCanonicalVoxels<T extends VoxelArray>(data: T, transform: CanonicalTransform): T {
  const out = allocateVoxels(pixelTypeOf(data), data.length) as T
  reorder(data, out, transform, false)
  return out
}

/**
 * Where the canonical voxels lie in the stored array: canonical voxel (i, j, k) is stored at
 * base + i * step[0] + j * step[1] + k * step[2]. Stages that visit every voxel read and write
 * through this instead of reordering a copy of a 16-million-voxel volume.
 */
export interface CanonicalLayout {
  /** Canonical size. */
  size: Vec3
  /** Signed stride, in the stored array, of each canonical axis. */
  step: Vec3
  base: number
}

export function canonicalLayout(transform: CanonicalTransform): CanonicalLayout {
  const { axes, flipped, original } = transform
  const [nx, ny] = original.size
  const storedStrides = [1, nx, nx * ny]
  let base = 0
  axes.forEach((a, c) => {
    if (flipped[c]) base += ((original.size[a] as number) - 1) * (storedStrides[a] as number)
  })
  return {
    size: axes.map((a) => original.size[a] as number) as Vec3,
    step: axes.map((a, c) => (flipped[c] ? -1 : 1) * (storedStrides[a] as number)) as Vec3,
    base,
  }
}

/**
 * Copies every voxel between the two layouts, row by row along canonical axis 0. Rows that are
 * contiguous in both layouts (axis 0 kept, not flipped) are block copies; this runs on every
 * 16-million-voxel volume several times per defacing, so it avoids a call per voxel.
 */
function reorder(from: VoxelArray, to: VoxelArray, transform: CanonicalTransform, toCanonical: boolean): void {
  const { size, step, base } = canonicalLayout(transform)
  const [s0, s1, s2] = step
  const [n0, n1, n2] = size
  let canonicalIndex = 0
  for (let k = 0; k < n2; k++) {
    for (let j = 0; j < n1; j++) {
      const originalIndex = base + k * s2 + j * s1
      if (s0 === 1) {
        if (toCanonical) to.set(from.subarray(originalIndex, originalIndex + n0), canonicalIndex)
        else to.set(from.subarray(canonicalIndex, canonicalIndex + n0), originalIndex)
      } else if (toCanonical) {
        for (let i = 0, o = originalIndex; i < n0; i++, o += s0) to[canonicalIndex + i] = from[o] as number
      } else {
        for (let i = 0, o = originalIndex; i < n0; i++, o += s0) to[o] = from[canonicalIndex + i] as number
      }
      canonicalIndex += n0
    }
  }
}
