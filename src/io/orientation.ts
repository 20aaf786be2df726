/**
 * Orientation codes in the nibabel/NIfTI convention: each letter names the direction in which
 * that voxel axis increases, so "RAS" means axis 0 runs towards the patient's right.
 */
import type { Mat3, Vec3 } from './volume.js'
import { mat3Column } from './matrix.js'

/** An LPS direction vector in RAS terms. */
export function lpsToRas(v: Vec3): Vec3 {
  return [-v[0], -v[1], v[2]]
}

const POSITIVE = ['R', 'A', 'S'] as const
const NEGATIVE = ['L', 'P', 'I'] as const

/** The world axis (0 = R-L, 1 = A-P, 2 = S-I) and sign that each voxel axis is closest to. */
export function nearestAxes(direction: Mat3): Array<{ axis: 0 | 1 | 2; sign: 1 | -1 }> {
  const columns = [0, 1, 2].map((c) => lpsToRas(mat3Column(direction, c)))
  const taken = new Set<number>()
  const result: Array<{ axis: 0 | 1 | 2; sign: 1 | -1 } | undefined> = [undefined, undefined, undefined]
  // Assign the strongest component first so that two voxel axes never claim the same world axis.
  const candidates = columns
    .flatMap((col, voxelAxis) => col.map((value, worldAxis) => ({ voxelAxis, worldAxis, value })))
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value))
  for (const { voxelAxis, worldAxis, value } of candidates) {
    if (result[voxelAxis] !== undefined || taken.has(worldAxis)) continue
    result[voxelAxis] = { axis: worldAxis as 0 | 1 | 2, sign: value < 0 ? -1 : 1 }
    taken.add(worldAxis)
  }
  return result as Array<{ axis: 0 | 1 | 2; sign: 1 | -1 }>
}

export function orientationCode(direction: Mat3): string {
  return nearestAxes(direction)
    .map(({ axis, sign }) => (sign > 0 ? POSITIVE[axis] : NEGATIVE[axis]))
    .join('')
}

/** The largest angle, in degrees, between a voxel axis and the world axis it is closest to. */
export function obliquityDegrees(direction: Mat3): number {
  const nearest = nearestAxes(direction)
  let worst = 0
  nearest.forEach(({ axis }, voxelAxis) => {
    const column = lpsToRas(mat3Column(direction, voxelAxis))
    const cosine = Math.min(1, Math.abs(column[axis]) / Math.hypot(...column))
    worst = Math.max(worst, (Math.acos(cosine) * 180) / Math.PI)
  })
  return worst
}

/** Below this, a tilt is rounding noise in the header rather than an oblique acquisition. */
export const OBLIQUE_THRESHOLD_DEGREES = 0.01

export function isOblique(direction: Mat3): boolean {
  return obliquityDegrees(direction) > OBLIQUE_THRESHOLD_DEGREES
}
