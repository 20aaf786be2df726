import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readImageNode } from '@itk-wasm/image-io'
import type { Volume } from './volume.js'
import { realIntensities } from './volume.js'
import { readVolume } from './read-volume.js'
import { writeVolume } from './write-volume.js'
import { parseNiftiHeader } from './nifti.js'
import { readFile, writeFile } from 'node:fs/promises'
import { gunzipSync } from 'node:zlib'
import { indexedVolume, rotation } from '../../test/synthetic-volume.js'
import { describeWithSharedData, sharedFiles, sharedPath } from '../../test/shared-data.js'
import { readDicomHeader } from './dicom-series.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'unface-roundtrip-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function expectSameGeometry(a: Volume, b: Volume, tolerance = 0): void {
  expect(b.size).toEqual(a.size)
  const close = (x: number[], y: number[]) => x.forEach((v, i) => expect(Math.abs(v - (y[i] as number))).toBeLessThanOrEqual(tolerance))
  close(b.spacing, a.spacing)
  close(b.origin, a.origin)
  close(b.direction, a.direction)
}

function expectSameIntensities(a: Volume, b: Volume): void {
  const x = realIntensities(a)
  const y = realIntensities(b)
  expect(y.length).toBe(x.length)
  expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer))).toBe(true)
}

async function niftiHeaderOf(path: string) {
  const bytes = await readFile(path)
  return parseNiftiHeader(path.endsWith('.gz') ? gunzipSync(bytes) : bytes, path)
}

describe('a volume read from .nii.gz', () => {
  it('holds nothing of the decompressed file but its own header and voxels, which are shared memory', async () => {
    // Both go to the face check's thread with every scan: a view into the whole file would be
    // copied there, and shared voxels are not copied at all.
    const volume = await readVolume(join(import.meta.dirname, '..', '..', 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz'))
    const header = volume.source.niftiHeader as Uint8Array
    expect(header.buffer.byteLength).toBe(header.byteLength)
    expect(volume.data.buffer).toBeInstanceOf(SharedArrayBuffer)
  })
})

describe('round trips of synthetic volumes (no ../shared needed)', () => {
  const oblique = rotation([10, -5, 25])
  for (const extension of ['.nii', '.nii.gz', '.nrrd', '.nhdr', '.mha', '.mhd']) {
    for (const pixelType of ['uint8', 'int16', 'float32'] as const) {
      it(`${pixelType} oblique volume through ${extension}`, async () => {
        const original = indexedVolume({ pixelType, direction: oblique, size: [9, 7, 5] })
        const path = join(dir, `synthetic-${pixelType}${extension}`)
        await writeVolume(original, path)
        const again = await readVolume(path)
        expect(again.pixelType).toBe(pixelType)
        expect(Array.from(again.data)).toEqual(Array.from(original.data))
        // NIfTI stores geometry as float32; the other formats as decimal text of doubles.
        expectSameGeometry(original, again, extension.startsWith('.nii') ? 2e-5 : 1e-9)
      })
    }
  }
})

/** The numeric fields of a NIfTI-1 header: byte offset, width and count. */
const NIFTI1_NUMBERS: [offset: number, width: number, count: number][] = [
  [0, 4, 1], [32, 4, 1], [36, 2, 1], [40, 2, 8], [56, 4, 3], [68, 2, 4], [76, 4, 11], [120, 2, 1],
  [124, 4, 4], [140, 4, 2], [252, 2, 2], [256, 4, 18],
]

/** The same .nii written big-endian, as some old scanners and tools wrote them. */
function toBigEndian(nii: Uint8Array, bytesPerVoxel: number): Uint8Array {
  const out = Uint8Array.from(nii)
  const voxOffset = new DataView(out.buffer).getFloat32(108, true)
  const swap = (at: number, width: number) => out.subarray(at, at + width).reverse()
  for (const [offset, width, count] of NIFTI1_NUMBERS) for (let i = 0; i < count; i++) swap(offset + i * width, width)
  for (let at = voxOffset; at < out.length; at += bytesPerVoxel) swap(at, bytesPerVoxel)
  return out
}

describe('a big-endian NIfTI', () => {
  it('is read, and written back big-endian with the same voxels, to .nii and .nii.gz', async () => {
    const original = indexedVolume({ pixelType: 'int16', direction: rotation([5, 0, 10]), size: [9, 7, 5] })
    for (let i = 0; i < original.data.length; i++) original.data[i] = i * 37 - 600
    const little = join(dir, 'little.nii')
    await writeVolume(original, little)
    const big = join(dir, 'big.nii')
    await writeFile(big, toBigEndian(await readFile(little), 2))
    const read = await readVolume(big)
    expect(Array.from(read.data)).toEqual(Array.from(original.data))
    expectSameGeometry(original, read, 2e-5)
    for (const extension of ['.nii', '.nii.gz']) {
      const path = join(dir, `big-again${extension}`)
      await writeVolume(read, path)
      expect((await niftiHeaderOf(path)).littleEndian).toBe(false)
      const again = await readVolume(path)
      expect(Array.from(again.data)).toEqual(Array.from(original.data))
      // Writing swaps a copy: the volume in memory stays little-endian.
      expect(Array.from(read.data)).toEqual(Array.from(original.data))
    }
  })
})

describe('a sheared grid (gantry-tilted CT) through NIfTI', () => {
  it('keeps its geometry, because only the sform is written', async () => {
    const tilt = 15 * (Math.PI / 180)
    // Slices step along z but drift along y: the third axis leans by the gantry tilt.
    const direction: [number, number, number, number, number, number, number, number, number] = [1, 0, 0, 0, 1, Math.sin(tilt), 0, 0, Math.cos(tilt)]
    const original = indexedVolume({ direction })
    const path = join(dir, 'tilted.nii.gz')
    await writeVolume(original, path)
    const header = await niftiHeaderOf(path)
    expect(header.qformCode).toBe(0)
    expect(header.sformCode).toBe(1)
    expectSameGeometry(original, await readVolume(path), 2e-5)
  })
})

describeWithSharedData('round trips of every real head (read, write, read)', () => {
  const heads = sharedFiles('heads')
  it('found the real heads', () => expect(heads.length).toBeGreaterThanOrEqual(19))
  for (const path of heads) {
    it(`${basename(path)} through .nii.gz, .nrrd and .mha`, async () => {
      const original = await readVolume(path)
      for (const extension of ['.nii.gz', '.nrrd', '.mha']) {
        const out = join(dir, basename(path).replace(/\.nii\.gz$/, extension))
        await writeVolume(original, out)
        const again = await readVolume(out)
        // NIfTI carries the original header bytes, so geometry is bit-identical; NRRD and
        // MetaImage store doubles as decimal text, which can move the last bit (1e-16).
        expectSameGeometry(original, again, extension === '.nii.gz' ? 0 : 1e-12)
        expectSameIntensities(original, again)
        if (extension === '.nii.gz') {
          expect(again.pixelType).toBe(original.pixelType)
          expect(Buffer.from(again.data.buffer).equals(Buffer.from(original.data.buffer))).toBe(true)
          const before = await niftiHeaderOf(path)
          const after = await niftiHeaderOf(out)
          expect(after.qformCode).toBe(before.qformCode)
          expect(after.sformCode).toBe(before.sformCode)
          expect(after.scaling).toEqual(before.scaling)
          expect(after.pixdim).toEqual(before.pixdim)
          expect(after.affineRas).toEqual(before.affineRas)
        } else if (original.scaling === undefined) {
          expect(again.pixelType).toBe(original.pixelType)
        }
      }
    })
  }

  it('our NIfTI reader agrees with itk-wasm on geometry and intensities for every real volume', async () => {
    for (const path of [...heads, ...sharedFiles('controls'), ...sharedFiles('brainmasks')]) {
      const ours = await readVolume(path)
      const itk = await readImageNode(path)
      expect(ours.size, path).toEqual(itk.size)
      const diff = (a: number[], b: ArrayLike<number>) => Math.max(...a.map((v, i) => Math.abs(v - Number(b[i]))))
      expect(diff(ours.spacing, itk.spacing), path).toBeLessThan(1e-6)
      expect(diff(ours.origin, itk.origin), path).toBeLessThan(1e-6)
      expect(diff(ours.direction, itk.direction as unknown as ArrayLike<number>), path).toBeLessThan(1e-6)
      const real = realIntensities(ours)
      const theirs = itk.data as unknown as ArrayLike<number>
      let worst = 0
      for (let i = 0; i < real.length; i++) worst = Math.max(worst, Math.abs((real[i] as number) - (theirs[i] as number)))
      expect(worst, path).toBe(0)
    }
  })
})

describeWithSharedData('DICOM series to NIfTI', () => {
  it('the Philips MPRAGE keeps its voxels and the geometry its DICOM headers give', async () => {
    const dicomDir = sharedPath('dicom', 'philips_adni_mprage')
    const series = await readVolume(dicomDir)
    // Expected geometry straight from the first and last slice headers, independently of the reader.
    const files = series.source.dicomFiles as string[]
    const first = await readDicomHeader(files[0] as string)
    const last = await readDicomHeader(files[files.length - 1] as string)
    const ipp = (h: typeof first) => (h?.get('ImagePositionPatient') as string).split('\\').map(Number)
    const iop = (first?.get('ImageOrientationPatient') as string).split('\\').map(Number)
    const [rowSpacing, columnSpacing] = (first?.get('PixelSpacing') as string).split('\\').map(Number) as [number, number]
    const normal = [iop[1]! * iop[5]! - iop[2]! * iop[4]!, iop[2]! * iop[3]! - iop[0]! * iop[5]!, iop[0]! * iop[4]! - iop[1]! * iop[3]!]
    const sliceStep = Math.hypot(...ipp(last).map((v, i) => v - (ipp(first)[i] as number))) / (files.length - 1)

    const out = join(dir, 'philips.nii.gz')
    await writeVolume(series, out)
    const again = await readVolume(out)
    expect(again.size).toEqual([Number(first?.get('Columns')), Number(first?.get('Rows')), files.length])
    const tolerance = 1e-4 // NIfTI stores geometry as float32
    again.origin.forEach((v, i) => expect(Math.abs(v - (ipp(first)[i] as number))).toBeLessThan(tolerance * 100))
    expect(again.spacing[0]).toBeCloseTo(columnSpacing, 4)
    expect(again.spacing[1]).toBeCloseTo(rowSpacing, 4)
    expect(again.spacing[2]).toBeCloseTo(sliceStep, 4)
    const columns = [iop.slice(0, 3), iop.slice(3, 6), normal]
    for (let c = 0; c < 3; c++) for (let r = 0; r < 3; r++) expect(Math.abs(again.direction[r * 3 + c]! - columns[c]![r]!)).toBeLessThan(tolerance)
    expect(again.pixelType).toBe(series.pixelType)
    expect(Buffer.from(again.data.buffer).equals(Buffer.from(series.data.buffer))).toBe(true)
    // No DICOM header text (names, birth dates) reaches the NIfTI, even when asked to keep text.
    const kept = join(dir, 'philips-kept.nrrd')
    await writeVolume(series, kept, { keepHeaderText: true })
    expect(series.headerText.some((t) => t.field === 'PatientName')).toBe(true)
    expect((await readVolume(kept)).headerText).toEqual([])
    expect((await readVolume(out)).headerText).toEqual([])
  })
})
