/** How big a volume unface accepts, checked from headers before any voxel is allocated. */
import { UnfaceError } from './errors.js'

/** 512^3: four times a 1 mm whole-head scan, and about 0.5 GB as float32. */
export const DEFAULT_MAX_VOXELS = 512 ** 3

export function assertWithinLimit(count: number, maxVoxels: number, file: string): void {
  if (count > maxVoxels) {
    throw new UnfaceError(
      `volume has ${count} voxels, over the limit of ${maxVoxels} (raise it with --max-voxels)`,
      { file },
    )
  }
}
