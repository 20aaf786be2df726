/**
 * --mask-from: is another image of the session on the reference image's voxel grid? Only then
 * may the reference's label map be applied to it voxel for voxel. NIfTI geometry is read from
 * the header alone; other formats are read whole (they are rare in BIDS).
 */
import { open } from 'node:fs/promises'
import { gunzipSync, constants as zlibConstants } from 'node:zlib'
import type { Geometry, Vec3 } from '../io/volume.js'
import { formatOfPath } from '../io/format.js'
import { geometryFromAffine, isGzip } from '../io/nifti-file.js'
import { parseNiftiHeader } from '../io/nifti.js'
import { readVolume } from '../io/read-volume.js'

/** Tolerances for "the same grid": float32 header round-off is far below them, a real shift far above. */
export const GRID_TOLERANCE = {
  /** Relative difference of voxel sizes. */
  spacing: 1e-4,
  /** Millimetres between the positions of voxel (0, 0, 0). */
  originMm: 0.01,
  /** Absolute difference of direction cosines (about 0.006 degrees). */
  direction: 1e-4,
} as const

export async function readGeometry(path: string): Promise<Geometry> {
  if (formatOfPath(path)?.format === 'nifti') {
    const handle = await open(path, 'r')
    let start: Uint8Array
    try {
      const buffer = Buffer.alloc(65536)
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
      start = buffer.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
    const raw = isGzip(start) ? gunzipSync(start, { finishFlush: zlibConstants.Z_SYNC_FLUSH }) : start
    const header = parseNiftiHeader(raw, path)
    return geometryFromAffine(header.affineRas, header.dim.slice(1, 4) as Vec3)
  }
  const { size, spacing, origin, direction } = await readVolume(path)
  return { size, spacing, origin, direction }
}

/** Why two grids differ, or undefined when they are the same within GRID_TOLERANCE. */
export function gridDifference(a: Geometry, b: Geometry): string | undefined {
  if (a.size.some((n, i) => n !== b.size[i])) return `size ${b.size.join('x')} differs from ${a.size.join('x')}`
  if (a.spacing.some((s, i) => Math.abs(s - (b.spacing[i] as number)) > GRID_TOLERANCE.spacing * Math.max(1, Math.abs(s)))) {
    return `spacing ${b.spacing.map(round).join('x')} mm differs from ${a.spacing.map(round).join('x')} mm`
  }
  const shift = Math.hypot(...a.origin.map((o, i) => o - (b.origin[i] as number)))
  if (shift > GRID_TOLERANCE.originMm) return `origin is ${round(shift)} mm away`
  if (a.direction.some((d, i) => Math.abs(d - (b.direction[i] as number)) > GRID_TOLERANCE.direction)) return 'orientation differs'
  return undefined
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000
}
