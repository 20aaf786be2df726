import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import type { Geometry, Mat3, Vec3 } from './volume.js'
import { fromCanonical, toCanonical } from './canonical-grid.js'
import { orientationCode } from './orientation.js'
import { mat3Vec3 } from './matrix.js'
import { niftiToVolume } from './nifti-file.js'
import { indexedVolume, rotation } from '../../test/synthetic-volume.js'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'

function worldOf(g: Geometry, index: Vec3): Vec3 {
  const offset = mat3Vec3(g.direction, index.map((v, i) => v * (g.spacing[i] as number)) as Vec3)
  return g.origin.map((o, i) => o + (offset[i] as number)) as Vec3
}

function indexOf(g: Geometry, flat: number): Vec3 {
  const [nx, ny] = g.size
  return [flat % nx, Math.floor(flat / nx) % ny, Math.floor(flat / (nx * ny))]
}

/** Permutation matrices with sign flips: every axis order and flip that scanners write. */
const LAYOUTS: Array<{ name: string; direction: Mat3 }> = [
  { name: 'LPS (DICOM axial)', direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
  { name: 'RAS', direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] },
  { name: 'PSR (IXI sagittal)', direction: [0, 0, -1, 1, 0, 0, 0, 1, 0] },
  { name: 'LIP (flipped coronal)', direction: [1, 0, 0, 0, 0, 1, 0, -1, 0] },
  { name: 'SLA', direction: [0, 1, 0, 0, 0, -1, -1, 0, 0] },
]

describe('canonical working grid', () => {
  for (const { name, direction } of LAYOUTS) {
    for (const oblique of [[0, 0, 0], [12, -7, 20]] as Vec3[]) {
      it(`${name}${oblique[0] ? ', oblique' : ''}: RAS-aligned voxels, same world positions, exact inverse`, () => {
        const tilt = rotation(oblique)
        const d = direction.map((_, i) => {
          const r = Math.floor(i / 3)
          const c = i % 3
          return [0, 1, 2].reduce((s, k) => s + (tilt[r * 3 + k] as number) * (direction[k * 3 + c] as number), 0)
        }) as Mat3
        const volume = indexedVolume({ direction: d, size: [6, 5, 4] })
        const { volume: canonical, transform } = toCanonical(volume)

        expect(orientationCode(canonical.direction)).toBe('RAS')
        // Every canonical voxel sits at the same physical point as the original voxel it came from.
        for (let i = 0; i < canonical.data.length; i += 7) {
          // (i * 7) % 251 is unique for fewer than 251 voxels, so a value identifies its voxel.
          const source = volume.data.indexOf(canonical.data[i] as number)
          const a = worldOf(canonical, indexOf(canonical, i))
          const b = worldOf(volume, indexOf(volume, source))
          expect(Math.max(...a.map((x, k) => Math.abs(x - (b[k] as number))))).toBeLessThan(1e-9)
        }
        const back = fromCanonical(canonical, transform)
        expect(Array.from(back.data)).toEqual(Array.from(volume.data))
        expect(back.size).toEqual(volume.size)
        expect(back.spacing).toEqual(volume.spacing)
        expect(back.origin).toEqual(volume.origin)
        expect(back.direction).toEqual(volume.direction)
      })
    }
  }

  it('keeps the pixel type and never resamples', () => {
    const volume = indexedVolume({ pixelType: 'float32', direction: [0, 0, -1, 1, 0, 0, 0, 1, 0] })
    const { volume: canonical } = toCanonical(volume)
    expect(canonical.pixelType).toBe('float32')
    expect([...canonical.data].sort()).toEqual([...volume.data].sort())
  })
})

describeWithSharedData('canonical grid on a real permuted IXI head', () => {
  it('maps PSR storage to RAS and back exactly', async () => {
    const path = sharedPath('heads', 'IXI132-HH-1415_T1.nii.gz')
    const volume = niftiToVolume(await readFile(path), path, 512 ** 3)
    expect(orientationCode(volume.direction)).toBe('PSR')
    const { volume: canonical, transform } = toCanonical(volume)
    expect(orientationCode(canonical.direction)).toBe('RAS')
    expect(canonical.size).toEqual([90, 120, 120])
    const back = fromCanonical(canonical, transform)
    expect(Buffer.from(back.data.buffer).equals(Buffer.from(volume.data.buffer))).toBe(true)
    expect(back.origin).toEqual(volume.origin)
    expect(back.direction).toEqual(volume.direction)
  })
})
