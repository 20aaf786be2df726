/** The real scans in ../shared/data that the evaluation and calibration scripts go through. */
import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { allocateVoxels, type Vec3, type Volume } from '../src/io/volume.js'

export const SHARED_DATA = resolve(import.meta.dirname, '..', '..', 'shared', 'data')

/** Every head with a face (../shared/data/heads), then both DICOM series. */
export function realHeads(data: string = SHARED_DATA): string[] {
  return [
    ...readdirSync(join(data, 'heads'))
      .filter((n) => /\.nii(\.gz)?$/.test(n))
      .sort()
      .map((n) => join(data, 'heads', n)),
    join(data, 'dicom', 'philips_adni_mprage'),
    join(data, 'dicom', 'slicer_ctheadaxial_quarter'),
  ]
}

/** Heads that do not show a whole face (by the name realHeads' files and folders give them). */
export const PARTIAL_FACE: Record<string, string> = {
  chris_t1: 'upper face only (mouth and chin outside the field of view)',
  slicer_ctheadaxial_quarter: 'lower face only (CT, 64x64 slices)',
}

/** Scans of one person (shared/data/README.md), by head name; a head not listed is a person of its own. */
export const PERSON: Record<string, string> = {
  Subj1_T1: 'Subj1',
  Subj1_FL: 'Subj1',
  T1_head_ext2: 'niivue-T1_head_ext2',
  T1w2mm: 'niivue-T1_head_ext2',
}

export function skullStrippedControl(data: string = SHARED_DATA): string {
  return join(data, 'controls', 'MR_Gd_skullstripped.nii.gz')
}

/**
 * A 2 mm head resampled to 1 mm in its own voxel axes (direction kept, trilinear) and centred in a
 * size^3 grid: how a 256^3 1 mm T1, today's usual research scan, is made from the 2 mm IXI heads.
 */
export function upsampledTo1mm(volume: Volume, size = 256): Volume {
  const [nx, ny, nz] = volume.size
  const factor = volume.spacing.map((s) => s / 1) as Vec3
  const pad = volume.size.map((n, i) => (size - n * (factor[i] as number)) / 2) as Vec3
  const data = allocateVoxels(volume.pixelType, size ** 3)
  const src = volume.data
  const at = (x: number, y: number, z: number) => (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz ? 0 : (src[x + nx * (y + ny * z)] as number))
  // Old continuous index of new voxel j along an axis: (j - pad + 0.5) / factor - 0.5.
  const map = (j: number, axis: number) => (j - (pad[axis] as number) + 0.5) / (factor[axis] as number) - 0.5
  let i = 0
  for (let z = 0; z < size; z++) {
    const fz = map(z, 2)
    const z0 = Math.floor(fz)
    const wz = fz - z0
    for (let y = 0; y < size; y++) {
      const fy = map(y, 1)
      const y0 = Math.floor(fy)
      const wy = fy - y0
      for (let x = 0; x < size; x++, i++) {
        const fx = map(x, 0)
        const x0 = Math.floor(fx)
        const wx = fx - x0
        const c00 = at(x0, y0, z0) * (1 - wx) + at(x0 + 1, y0, z0) * wx
        const c10 = at(x0, y0 + 1, z0) * (1 - wx) + at(x0 + 1, y0 + 1, z0) * wx
        const c01 = at(x0, y0, z0 + 1) * (1 - wx) + at(x0 + 1, y0, z0 + 1) * wx
        const c11 = at(x0, y0 + 1, z0 + 1) * (1 - wx) + at(x0 + 1, y0 + 1, z0 + 1) * wx
        data[i] = Math.round((c00 * (1 - wy) + c10 * wy) * (1 - wz) + (c01 * (1 - wy) + c11 * wy) * wz)
      }
    }
  }
  const start = [0, 1, 2].map((a) => map(0, a)) as Vec3
  const origin = [0, 1, 2].map(
    (r) => (volume.origin[r] as number) + [0, 1, 2].reduce((sum, c) => sum + (volume.direction[r * 3 + c] as number) * (volume.spacing[c] as number) * (start[c] as number), 0),
  ) as Vec3
  const { niftiHeader, ...source } = volume.source
  void niftiHeader
  return { ...volume, data, size: [size, size, size], spacing: [1, 1, 1], origin, source }
}
