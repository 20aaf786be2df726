/**
 * Boxes of voxels, for stages that only need to look at part of a volume (the face and what
 * surrounds it, a mask and the distance it can reach): find one, grow it, copy voxels out of it
 * and back in.
 */
import type { Vec3, VoxelArray } from '../io/volume.js'

/** A box of voxels: first corner and size per axis. */
export interface Box {
  start: Vec3
  size: Vec3
}

/** The smallest box holding every voxel whose label passes `test`; undefined when there is none. */
export function boxAround(labels: Uint8Array, size: Vec3, test: (label: number) => boolean): Box | undefined {
  const [nx, ny, nz] = size
  const min: Vec3 = [nx, ny, nz]
  const max: Vec3 = [-1, -1, -1]
  // The test asked once per possible byte value: a call per voxel cost ~0.1 s on a 256^3 scan.
  const passes = labelTable(test)
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = nx * (y + ny * z)
      let first = 0
      while (first < nx && passes[labels[row + first] as number] === 0) first++
      if (first === nx) continue
      let last = nx - 1
      while (passes[labels[row + last] as number] === 0) last--
      min[0] = Math.min(min[0], first)
      max[0] = Math.max(max[0], last)
      min[1] = Math.min(min[1], y)
      max[1] = Math.max(max[1], y)
      min[2] = Math.min(min[2], z)
      max[2] = Math.max(max[2], z)
    }
  }
  if (max[0] < 0) return undefined
  return { start: min, size: [0, 1, 2].map((a) => (max[a] as number) - (min[a] as number) + 1) as Vec3 }
}

/** `inner` (a box of the volume) in the coordinates of the larger box `outer`. */
export function within(inner: Box, outer: Box): Box {
  return { start: inner.start.map((s, a) => s - (outer.start[a] as number)) as Vec3, size: inner.size }
}

/** The box grown by `by` voxels per axis, within the volume. */
export function grow(box: Box, size: Vec3, by: Vec3): Box {
  const start = box.start.map((s, a) => Math.max(0, s - (by[a] as number))) as Vec3
  const end = box.start.map((s, a) => Math.min(size[a] as number, s + (box.size[a] as number) + (by[a] as number))) as Vec3
  return { start, size: end.map((e, a) => e - (start[a] as number)) as Vec3 }
}

/** The voxels of `data` inside the box, as a volume of the box's size, in `out`'s type. */
export function crop<T extends Uint8Array | Float32Array>(data: VoxelArray, size: Vec3, box: Box, out: T): T {
  const [bx, by, bz] = box.size
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const from = box.start[0] + size[0] * (box.start[1] + y + size[1] * (box.start[2] + z))
      out.set(data.subarray(from, from + bx), bx * (y + by * z))
    }
  }
  return out
}

/** The inverse of crop: a box-sized volume written into the volume at the box. */
export function paste(local: Float32Array, box: Box, into: Float32Array, size: Vec3): void {
  const [bx, by, bz] = box.size
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const to = box.start[0] + size[0] * (box.start[1] + y + size[1] * (box.start[2] + z))
      into.set(local.subarray(bx * (y + by * z), bx * (y + by * z) + bx), to)
    }
  }
}

/** For every byte value, 1 where the test passes: a lookup in place of a call per voxel. */
export function labelTable(test: (label: number) => boolean): Uint8Array {
  return Uint8Array.from({ length: 256 }, (_, label) => (test(label) ? 1 : 0))
}
