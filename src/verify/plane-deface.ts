/**
 * A crude defacer for testing and calibrating the face check without the segmentation model:
 * every voxel in front of a coronal plane and below an axial plane is set to air, which takes away
 * the nose, mouth, chin, cheeks and eyes and leaves flat cut faces. It knows nothing of the brain
 * and is not the product's defacer (src/deface).
 *
 * The planes are placed from the head's own extent in the canonical RAS grid (src/io/canonical-grid.ts):
 * `behindNoseMm` behind the most anterior skin voxel (the nose tip) and `belowTopMm` below the
 * most superior one (the vertex). With the defaults, on adult heads, the coronal plane lies in
 * front of the ears and the axial plane just above the brow.
 */
import type { Volume } from '../io/volume.js'
import { withVoxels } from '../io/volume.js'
import { canonicalGeometry, canonicalTransformOf, fromCanonicalVoxels, toCanonicalVoxels } from '../io/canonical-grid.js'
import { skinThreshold } from './render-surface.js'

export interface PlaneDefaceOptions {
  /** The coronal plane's distance behind the nose tip, in mm (default 90). */
  behindNoseMm?: number
  /** The axial plane's distance below the vertex, in mm (default 80). */
  belowTopMm?: number
  /** The real intensity of the skin; skinThreshold(volume) by default. */
  threshold?: number
}

const MIN_AREA_MM2 = 30

export function planeDeface(volume: Volume, options: PlaneDefaceOptions = {}): Volume {
  const behindNoseMm = options.behindNoseMm ?? 90
  const belowTopMm = options.belowTopMm ?? 80
  const threshold = options.threshold ?? skinThreshold(volume)
  const transform = canonicalTransformOf(volume)
  const { size, spacing } = canonicalGeometry(transform)
  const [nx, ny, nz] = size
  const data = toCanonicalVoxels(volume.data, transform)
  const { slope, intercept } = volume.scaling ?? { slope: 1, intercept: 0 }
  const storedThreshold = (threshold - intercept) / slope
  const isSkin = slope > 0 ? (v: number) => v >= storedThreshold : (v: number) => v <= storedThreshold
  // The air value: the stored value of the darkest voxel. The nose tip and the vertex are the
  // last coronal and axial slices with at least MIN_AREA_MM2 of skin, so stray bright voxels in
  // the air do not count.
  let air = data[0] as number
  const perY = new Float64Array(ny)
  const perZ = new Float64Array(nz)
  let i = 0
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const v = data[i] as number
        if (v * slope < air * slope) air = v
        if (!isSkin(v)) continue
        perY[y] = (perY[y] as number) + 1
        perZ[z] = (perZ[z] as number) + 1
      }
    }
  }
  const front = lastAtLeast(perY, MIN_AREA_MM2 / (spacing[0] * spacing[2]))
  const top = lastAtLeast(perZ, MIN_AREA_MM2 / (spacing[0] * spacing[1]))
  if (front < 0 || top < 0) return volume
  const yCut = front - behindNoseMm / spacing[1]
  const zCut = top - belowTopMm / spacing[2]
  i = 0
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (y > yCut && z < zCut) data[i] = air
      }
    }
  }
  return withVoxels(volume, fromCanonicalVoxels(data, transform))
}

function lastAtLeast(counts: Float64Array, minimum: number): number {
  for (let i = counts.length - 1; i >= 0; i--) if ((counts[i] as number) >= minimum) return i
  return -1
}
