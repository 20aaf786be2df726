import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDicomTagsNode, readImageDicomFileSeriesNode } from '@itk-wasm/dicom'
import type { Vec3, Volume } from './volume.js'
import { UnfaceError } from './errors.js'
import { planSliceStack, readDicomHeader, readDicomSeries, resampleSlices } from './dicom-series.js'
import { sharedPath } from '../../test/shared-data.js'

const dicomDir = sharedPath('dicom')
const hasDicom = existsSync(dicomDir)
const philipsDir = join(dicomDir, 'philips_adni_mprage')
const ctDir = join(dicomDir, 'slicer_ctheadaxial_quarter')

let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'unface-dicom-'))
})
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true })
})

async function freshDir(name: string): Promise<string> {
  const dir = join(tmp, name)
  await mkdir(dir, { recursive: true })
  return dir
}

async function expectUnfaceError(promise: Promise<unknown>, pattern: RegExp): Promise<UnfaceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(UnfaceError)
  expect((error as UnfaceError).message).toMatch(pattern)
  expect((error as UnfaceError).message).not.toContain('\n')
  return error as UnfaceError
}

function expectClose(actual: readonly number[], expected: readonly number[], tolerance: number): void {
  expect(actual.length).toBe(expected.length)
  actual.forEach((value, i) => {
    expect(Math.abs(value - (expected[i] as number)), `element ${i}: ${value} vs ${expected[i]}`).toBeLessThanOrEqual(tolerance)
  })
}

function slice(volume: Volume, k: number): number[] {
  const n = volume.size[0] * volume.size[1]
  return Array.from(volume.data.subarray(k * n, (k + 1) * n))
}

const AXIAL = [1, 0, 0, 0, 1, 0]
const at = (name: string, position: Vec3) => ({ name, position })

describe('planSliceStack (slice geometry from positions)', () => {
  it('sorts slices along the normal and takes the origin from the first', () => {
    const stack = planSliceStack('d', [at('c', [0, 0, 3]), at('a', [0, 0, 0]), at('b', [0, 0, 1.5])], AXIAL, [0.5, 0.7])
    expect(stack.order).toEqual([1, 2, 0])
    expect(stack.origin).toEqual([0, 0, 0])
    expect(stack.spacing).toEqual([0.7, 0.5, 1.5])
    expect(stack.direction).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1])
    expect(stack.notes).toEqual([])
    expect(stack.resampled).toBe(false)
  })

  it('stacks along the normal when it points to the feet (row x column = -z)', () => {
    // Rows along +x, columns along -y: the normal is -z, so the top slice comes first.
    const stack = planSliceStack('d', [at('low', [0, 0, -10]), at('mid', [0, 0, -8]), at('top', [0, 0, -6])], [1, 0, 0, 0, -1, 0], [1, 1])
    expect(stack.order).toEqual([2, 1, 0])
    expect(stack.origin).toEqual([0, 0, -6])
    expectClose(stack.direction, [1, 0, 0, 0, -1, 0, 0, 0, -1], 1e-12)
    expect(stack.spacing[2]).toBeCloseTo(2, 12)
  })

  it('ignores rounding noise in the positions', () => {
    const slices = [0, 1, 2, 3, 4].map((k) => at(`s${k}`, [0.0004 * (k % 2), -0.0003 * (k % 2), k * 1.0 + 0.002 * (k % 2)] as Vec3))
    const stack = planSliceStack('d', slices, AXIAL, [1, 1])
    expect(stack.notes).toEqual([])
    expect(stack.direction).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1])
  })

  it('follows a gantry tilt: the third axis runs along the positions, not the normal', () => {
    const tilt = (20 * Math.PI) / 180
    // A CT gantry tilted about the left-right axis: each slice is shifted along y as z advances.
    const slices = [0, 1, 2, 3].map((k) => at(`s${k}`, [0, k * 1.5 * Math.tan(tilt), k * 1.5] as Vec3))
    const stack = planSliceStack('d', slices, AXIAL, [1, 1])
    expectClose(stack.direction, [1, 0, 0, 0, 1, Math.sin(tilt), 0, 0, Math.cos(tilt)], 1e-12)
    expect(stack.spacing[2]).toBeCloseTo(1.5 / Math.cos(tilt), 12)
    expect(stack.resampled).toBe(false)
    expect(stack.notes).toHaveLength(1)
    expect(stack.notes[0]).toMatch(/gantry tilt: slices advance 20\.00° off their normal/)
    // Every slice centre lands on its ImagePositionPatient.
    for (const [k, s] of slices.entries()) {
      const placed = [0, 1, 2].map((r) => stack.origin[r]! + k * stack.spacing[2] * stack.direction[r * 3 + 2]!)
      expectClose(placed, s.position, 1e-9)
    }
  })

  it('fills a missing slice by resampling, and names the gap', () => {
    const slices = [0, 1, 2, 4, 5].map((z) => at(`f${z}`, [0, 0, z * 2] as Vec3))
    const stack = planSliceStack('d', slices, AXIAL, [1, 1])
    expect(stack.resampled).toBe(true)
    expect(stack.depth).toBe(6)
    expect(stack.spacing[2]).toBeCloseTo(2, 12)
    expect(stack.offsets).toEqual([0, 2, 4, 8, 10])
    expect(stack.notes).toHaveLength(1)
    expect(stack.notes[0]).toMatch(/^uneven slice spacing: the median gap is 2\.000 mm but there are 4\.000 mm between f2 and f4; /)
    expect(stack.notes[0]).toMatch(/resampled to 6 even slices 2\.000 mm apart/)
  })

  it('resamples mixed spacing at the smallest gap, keeping first and last slice', () => {
    const z = [0, 2.5, 5, 7.5, 12.5, 17.5, 22.5]
    const stack = planSliceStack('d', z.map((v, k) => at(`s${k}`, [0, 0, v])), AXIAL, [1, 1])
    expect(stack.depth).toBe(10)
    expect(stack.spacing[2]).toBeCloseTo(2.5, 12)
    expect(stack.notes[0]).toMatch(/5\.000 mm between s3 and s4/)
  })

  it('treats gaps within 1% (or 0.01 mm) as even', () => {
    const stack = planSliceStack('d', [0, 3, 6.02, 9].map((v, k) => at(`s${k}`, [0, 0, v])), AXIAL, [1, 1])
    expect(stack.resampled).toBe(false)
    expect(stack.spacing[2]).toBeCloseTo(3, 12)
  })

  it('refuses two images at one position, naming them', () => {
    expect(() => planSliceStack('dir', [at('echo1', [0, 0, 0]), at('echo2', [0, 0, 0]), at('x', [0, 0, 1])], AXIAL, [1, 1])).toThrow(
      /dir: echo1 and echo2 are at the same slice position/,
    )
  })

  it('refuses positions that are not on one line', () => {
    expect(() => planSliceStack('dir', [at('a', [0, 0, 0]), at('b', [5, 0, 1]), at('c', [0, 0, 2])], AXIAL, [1, 1])).toThrow(
      /do not lie on one line \(b is/,
    )
  })

  it('refuses a single slice', () => {
    expect(() => planSliceStack('dir', [at('a', [0, 0, 0])], AXIAL, [1, 1])).toThrow(/1 slice; unface needs a 3D volume/)
  })
})

describe('resampleSlices', () => {
  it('interpolates linearly between the neighbouring input slices', () => {
    // Two voxels per slice; input slices at 0, 2 and 6 mm, output every 2 mm.
    const out = resampleSlices(Int16Array.from([0, 10, 20, 30, 61, 70]), 2, [0, 2, 6], 4, 2)
    expect(out).toBeInstanceOf(Int16Array)
    expect(Array.from(out)).toEqual([0, 10, 20, 30, 41, 50, 61, 70])
  })
})

/** A minimal DICOM file: preamble, meta group, then the given data set elements. */
function dicomFile(transferSyntax: string, dataSet: Uint8Array[]): Uint8Array {
  const meta = element(0x0002_0010, 'UI', ascii(transferSyntax + '\0'), true, true)
  return concat([new Uint8Array(128), ascii('DICM'), meta, ...dataSet])
}

function element(tag: number, vr: string, value: Uint8Array, little: boolean, explicit: boolean, undefinedLength = false): Uint8Array {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr)
  // Items never carry a VR.
  const withVr = explicit && tag >>> 16 !== 0xfffe
  const header = new DataView(new ArrayBuffer(withVr && long ? 12 : 8))
  header.setUint16(0, tag >>> 16, little)
  header.setUint16(2, tag & 0xffff, little)
  const length = undefinedLength ? 0xffff_ffff : value.length
  if (!withVr) header.setUint32(4, length, little)
  else {
    header.setUint8(4, vr.charCodeAt(0))
    header.setUint8(5, vr.charCodeAt(1))
    if (long) header.setUint32(8, length, little)
    else header.setUint16(6, length, little)
  }
  return concat([new Uint8Array(header.buffer), value])
}

function delimiter(tag: number, little: boolean): Uint8Array {
  const bytes = new DataView(new ArrayBuffer(8))
  bytes.setUint16(0, tag >>> 16, little)
  bytes.setUint16(2, tag & 0xffff, little)
  return new Uint8Array(bytes.buffer)
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.length % 2 === 1 ? text + ' ' : text, 'latin1'))
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts))
}

function syntheticDataSet(little: boolean, explicit: boolean): Uint8Array[] {
  const e = (tag: number, vr: string, value: Uint8Array, undefinedLength = false) => element(tag, vr, value, little, explicit, undefinedLength)
  const rows = new Uint8Array(2)
  new DataView(rows.buffer).setUint16(0, 192, little)
  // An undefined-length sequence whose item holds an undefined-length sequence of its own.
  const nested = concat([
    e(0xfffe_e000, '', new Uint8Array(0), true),
    e(0x0008_1150, 'UI', ascii('1.2.3')),
    e(0x0008_1155, 'SQ', concat([e(0xfffe_e000, '', e(0x0020_0032, 'DS', ascii('9\\9\\9'))), delimiter(0xfffe_e0dd, little)]), true),
    delimiter(0xfffe_e00d, little),
    delimiter(0xfffe_e0dd, little),
  ])
  return [
    e(0x0008_0005, 'CS', ascii('ISO_IR 192')),
    e(0x0008_0060, 'CS', ascii('MR')),
    e(0x0008_1140, 'SQ', nested, true),
    // A private block larger than the first read, so the rest of the file has to be read too.
    e(0x0009_1010, 'OB', new Uint8Array(100_000)),
    e(0x0010_0010, 'PN', Uint8Array.from(Buffer.from('Müller^Jürgen', 'utf8'))),
    e(0x0020_000e, 'UI', ascii('1.2.840.99\0')),
    e(0x0020_0032, 'DS', ascii(' -1.5\\2\\3.25 ')),
    e(0x0028_0010, 'US', rows),
    e(0x7fe0_0010, 'OW', new Uint8Array(4)),
  ]
}

describe('readDicomHeader (no ../shared needed)', () => {
  const cases = [
    ['explicit VR little endian', '1.2.840.10008.1.2.1', true, true],
    ['implicit VR little endian', '1.2.840.10008.1.2', true, false],
    ['explicit VR big endian', '1.2.840.10008.1.2.2', false, true],
  ] as const
  for (const [name, syntax, little, explicit] of cases) {
    it(`reads top-level tags past nested sequences: ${name}`, async () => {
      const file = join(await freshDir('header'), `${name}.dcm`)
      await writeFile(file, dicomFile(syntax, syntheticDataSet(little, explicit)))
      const header = await readDicomHeader(file)
      expect(header?.get('Modality')).toBe('MR')
      expect(header?.get('PatientName')).toBe('Müller^Jürgen')
      expect(header?.get('SeriesInstanceUID')).toBe('1.2.840.99')
      expect(header?.get('ImagePositionPatient')).toBe('-1.5\\2\\3.25')
      expect(header?.get('Rows')).toBe('192')
    })
  }

  it('reads a file without preamble (ACR-NEMA style, implicit VR)', async () => {
    const file = join(await freshDir('header'), 'nopreamble')
    await writeFile(file, concat(syntheticDataSet(true, false)))
    expect((await readDicomHeader(file))?.get('ImagePositionPatient')).toBe('-1.5\\2\\3.25')
  })

  it('says undefined for files that are not DICOM', async () => {
    const dir = await freshDir('header')
    await writeFile(join(dir, 'README'), 'not an image\n'.repeat(20))
    await writeFile(join(dir, 'empty'), '')
    expect(await readDicomHeader(join(dir, 'README'))).toBeUndefined()
    expect(await readDicomHeader(join(dir, 'empty'))).toBeUndefined()
  })

  it('rejects a DICOM file cut short inside its header', async () => {
    const file = join(await freshDir('header'), 'cut.dcm')
    await writeFile(file, dicomFile('1.2.840.10008.1.2.1', syntheticDataSet(true, true)).subarray(0, 50_000))
    await expectUnfaceError(readDicomHeader(file), /cut\.dcm: is a truncated DICOM file/)
  })
})

describe('readDicomSeries: directories without a series (no ../shared needed)', () => {
  it('an empty directory', async () => {
    const dir = await freshDir('empty')
    await expectUnfaceError(readDicomSeries(dir), /empty: no DICOM files found$/)
  })

  it('a directory of files that are not DICOM', async () => {
    const dir = await freshDir('not-dicom')
    await writeFile(join(dir, 'README.txt'), 'hello\n')
    await writeFile(join(dir, 'noise.bin'), Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))
    await expectUnfaceError(readDicomSeries(dir), /not-dicom: no DICOM files found$/)
  })

  it('a directory that does not exist', async () => {
    await expectUnfaceError(readDicomSeries(join(tmp, 'nowhere')), /nowhere: no such directory/)
  })
})

if (!hasDicom) {
  console.warn(
    `SKIPPED dicom-series.test.ts real-data tests (no ${dicomDir}): Philips MPRAGE and Slicer CT geometry, ` +
      'several series in one directory, and the synthetic tilt / missing-slice / duplicate series made from the CT files',
  )
}

/** Rewrites ImagePositionPatient in a file stored as explicit VR little endian. */
function withPosition(bytes: Uint8Array, position: Vec3): Uint8Array {
  const marker = Buffer.from([0x20, 0x00, 0x32, 0x00, 0x44, 0x53])
  const start = Buffer.from(bytes).indexOf(marker)
  expect(start).toBeGreaterThan(0)
  const oldLength = (bytes[start + 6] as number) | ((bytes[start + 7] as number) << 8)
  const value = ascii(position.map((v) => v.toFixed(4)).join('\\'))
  const length = Uint8Array.from([value.length & 0xff, value.length >> 8])
  return concat([bytes.subarray(0, start + 6), length, value, bytes.subarray(start + 8 + oldLength)])
}

/** Expected geometry, derived from the tags alone: normal = row x column, slices sorted along it. */
function expectedGeometry(headers: Array<Map<string, string>>) {
  const nums = (h: Map<string, string>, k: string) => h.get(k)!.split('\\').map(Number)
  const iop = nums(headers[0]!, 'ImageOrientationPatient')
  const [r, c] = [iop.slice(0, 3), iop.slice(3)] as [Vec3, Vec3]
  const n: Vec3 = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
  const positions = headers.map((h) => nums(h, 'ImagePositionPatient') as Vec3)
  const along = (p: Vec3) => p[0] * n[0] + p[1] * n[1] + p[2] * n[2]
  positions.sort((a, b) => along(a) - along(b))
  const [rowSpacing, columnSpacing] = nums(headers[0]!, 'PixelSpacing') as [number, number]
  const first = positions[0]!
  const last = positions[positions.length - 1]!
  return {
    size: [Number(headers[0]!.get('Columns')), Number(headers[0]!.get('Rows')), headers.length],
    spacing: [columnSpacing, rowSpacing, (along(last) - along(first)) / (positions.length - 1)],
    origin: first,
    direction: [r[0], c[0], n[0], r[1], c[1], n[1], r[2], c[2], n[2]],
  }
}

async function tagsOf(dir: string): Promise<Array<Map<string, string>>> {
  const names = (await readdir(dir)).sort()
  return Promise.all(names.map(async (name) => new Map(await readDicomHeader(join(dir, name)))))
}

async function timed<T>(label: string, run: () => Promise<T>): Promise<T> {
  const start = performance.now()
  const result = await run()
  console.info(`${label}: ${((performance.now() - start) / 1000).toFixed(2)} s`)
  return result
}

describe.skipIf(!hasDicom)('readDicomSeries on real series [../shared/data/dicom]', () => {
  it('this parser reads the same tags as itk-wasm readDicomTagsNode', async () => {
    const files = [join(philipsDir, '1301_0001.dcm'), join(philipsDir, '1301_0170.dcm'), join(ctDir, 'CTHead47.dcm')]
    const tags = {
      SeriesInstanceUID: '0020|000e',
      Modality: '0008|0060',
      ImagePositionPatient: '0020|0032',
      ImageOrientationPatient: '0020|0037',
      PixelSpacing: '0028|0030',
      Rows: '0028|0010',
      Columns: '0028|0011',
      PatientName: '0010|0010',
      PatientBirthDate: '0010|0030',
      InstitutionName: '0008|0080',
    }
    for (const file of files) {
      const mine = await readDicomHeader(file)
      const theirs = new Map((await readDicomTagsNode(file, { tagsToRead: { tags: Object.values(tags) } })).tags)
      for (const [keyword, tag] of Object.entries(tags)) {
        const expected = (theirs.get(tag) ?? '').split('\\').map((v) => v.trim()).join('\\')
        expect(mine?.get(keyword) ?? '', `${basename(file)} ${keyword}`).toBe(expected)
      }
    }
  })

  it('Philips sagittal MPRAGE: geometry agrees with the DICOM headers', async () => {
    const volume = await timed('read philips_adni_mprage (170 files)', () => readDicomSeries(philipsDir))
    const expected = expectedGeometry(await tagsOf(philipsDir))
    expect(volume.size).toEqual([256, 256, 170])
    expect(volume.size).toEqual(expected.size)
    // The reader normalises the direction cosines (theirs are 1 +- 2e-8), the expectation does not.
    expectClose(volume.spacing, expected.spacing, 1e-6)
    expect(volume.spacing[2]).toBeCloseTo(1, 5)
    expectClose(volume.origin, expected.origin, 1e-9)
    expectClose(volume.direction, expected.direction, 1e-7)
    expect(volume.modality).toBe('MR')
    // itk-wasm applies RescaleSlope (2.3617 here) and hands back doubles; the stored uint16 values
    // are recovered exactly and the rescale kept as scaling.
    expect(volume.pixelType).toBe('uint16')
    expect(volume.scaling?.slope).toBeCloseTo(2.3617, 4)
    expect(volume.scaling?.intercept).toBe(0)
    expect(volume.source.notes).toEqual([])
    expect(volume.source.format).toBe('dicom')
    expect(volume.source.dicomFiles).toHaveLength(170)
    expect(volume.headerText).toEqual(
      expect.arrayContaining([
        { field: 'PatientName', value: 'd2n_Philips_3T_R571' },
        { field: 'PatientBirthDate', value: '19800501' },
        { field: 'PatientSex', value: 'M' },
        { field: 'PatientAge', value: '041Y' },
        { field: 'PatientWeight', value: '90' },
        { field: 'StudyDate', value: '20210902' },
      ]),
    )
    // The first and last slices of the volume are the pixels of the first and last sorted files.
    for (const k of [0, 169]) {
      const file = volume.source.dicomFiles![k]!
      const alone = (await readImageDicomFileSeriesNode({ inputImages: [file] })).outputImage
      const { slope, intercept } = volume.scaling ?? { slope: 1, intercept: 0 }
      const expected = Array.from(alone.data as Float64Array)
      const worst = Math.max(...slice(volume, k).map((v, i) => Math.abs(v * slope + intercept - (expected[i] as number))))
      expect(worst).toBeLessThan(1e-9)
    }
  })

  it('Slicer head CT: modality, size, spacing, and values as the header states them', async () => {
    const volume = await timed('read slicer_ctheadaxial_quarter (93 files)', () => readDicomSeries(ctDir))
    const expected = expectedGeometry(await tagsOf(ctDir))
    expect(volume.modality).toBe('CT')
    expect(volume.size).toEqual([64, 64, 93])
    expect(volume.spacing).toEqual([3.2, 3.2, 1.5])
    expect(volume.size).toEqual(expected.size)
    expectClose(volume.spacing, expected.spacing, 1e-9)
    expectClose(volume.origin, expected.origin, 1e-9)
    expectClose(volume.direction, expected.direction, 1e-12)
    // Sorted by position, not by name (CTHead10 sorts before CTHead2 as text).
    expect(volume.source.dicomFiles!.slice(0, 3).map((f) => basename(f))).toEqual(['CTHead1.dcm', 'CTHead2.dcm', 'CTHead3.dcm'])
    expect(volume.headerText).toEqual(
      expect.arrayContaining([
        { field: 'PatientName', value: 'Austrialian' },
        { field: 'PatientID', value: '8775070' },
        { field: 'InstitutionName', value: 'GDCM Hospital' },
      ]),
    )
    // This series is not in Hounsfield units: RescaleIntercept is 0 and the stored values run
    // from 0 (outside the reconstruction circle) through about 100 (air) to about 1050 (soft
    // tissue), i.e. HU + 1024. The reader keeps what the header says and adds a note.
    const tags = new Map((await readDicomTagsNode(join(ctDir, 'CTHead1.dcm'), { tagsToRead: { tags: ['0028|1052', '0028|1053'] } })).tags)
    expect(Number(tags.get('0028|1052'))).toBe(0)
    expect(Number(tags.get('0028|1053'))).toBe(1)
    let min = Infinity
    let air = 0
    let tissue = 0
    for (const v of volume.data) {
      min = Math.min(min, v)
      if (v >= 20 && v < 200) air++
      if (v >= 950 && v < 1150) tissue++
    }
    expect(min).toBe(0)
    expect(air / volume.data.length).toBeGreaterThan(0.2)
    expect(tissue / volume.data.length).toBeGreaterThan(0.15)
    expect(volume.source.notes).toEqual([expect.stringMatching(/CT values are all 0 or above.*HU \+ 1024/)])
  })

  it('a directory with two series: lists both, and reads the one asked for', async () => {
    const dir = await freshDir('two-series')
    const ctNames = ['CTHead40.dcm', 'CTHead41.dcm', 'CTHead42.dcm', 'CTHead43.dcm']
    for (const name of ctNames) await copyFile(join(ctDir, name), join(dir, name))
    await mkdir(join(dir, 'mr'))
    for (const name of ['1301_0080.dcm', '1301_0081.dcm', '1301_0082.dcm']) await copyFile(join(philipsDir, name), join(dir, 'mr', name))
    await writeFile(join(dir, 'README'), 'two series\n')
    const ctUid = (await readDicomHeader(join(ctDir, 'CTHead1.dcm')))!.get('SeriesInstanceUID')!
    const mrUid = (await readDicomHeader(join(philipsDir, '1301_0001.dcm')))!.get('SeriesInstanceUID')!

    const error = await expectUnfaceError(readDicomSeries(dir), /two-series: holds 2 DICOM series; choose one with --series UID: /)
    expect(error.message).toContain(`${ctUid} (CT, "None", 4 files)`)
    expect(error.message).toContain(`${mrUid} (MR, "ADNI_Sag3D MPRAGE", 3 files)`)

    const ct = await readDicomSeries(dir, { seriesUid: ctUid })
    expect(ct.modality).toBe('CT')
    expect(ct.size).toEqual([64, 64, 4])
    expect(ct.origin).toEqual([0, 0, 39 * 1.5])
    const mr = await readDicomSeries(dir, { seriesUid: mrUid })
    expect(mr.modality).toBe('MR')
    expect(mr.size).toEqual([256, 256, 3])

    await expectUnfaceError(readDicomSeries(dir, { seriesUid: '1.2.3' }), /has no DICOM series 1\.2\.3; it holds .*4 files.*3 files/)
  })

  /** Copies CT slices 1..count, rewriting their positions. */
  async function ctCopy(name: string, count: number, position: (k: number) => Vec3 | undefined): Promise<string> {
    const dir = await freshDir(name)
    for (let k = 0; k < count; k++) {
      const p = position(k)
      if (p === undefined) continue
      const bytes = await readFile(join(ctDir, `CTHead${k + 1}.dcm`))
      await writeFile(join(dir, `slice${k}.dcm`), withPosition(bytes, p))
    }
    return dir
  }

  it('a gantry-tilted CT: the third axis follows the slice positions, voxels untouched', async () => {
    const tilt = (15 * Math.PI) / 180
    const dir = await ctCopy('tilted', 12, (k) => [0, -k * 1.5 * Math.tan(tilt), k * 1.5])
    const rewritten = (await readDicomHeader(join(dir, 'slice3.dcm')))!.get('ImagePositionPatient')
    expect(rewritten).toBe(`0.0000\\${(-4.5 * Math.tan(tilt)).toFixed(4)}\\4.5000`)
    const volume = await readDicomSeries(dir)
    expect(volume.size).toEqual([64, 64, 12])
    expectClose(volume.direction, [1, 0, 0, 0, 1, -Math.sin(tilt), 0, 0, Math.cos(tilt)], 1e-4)
    expect(volume.spacing[2]).toBeCloseTo(1.5 / Math.cos(tilt), 3)
    expect(volume.origin).toEqual([0, 0, 0])
    expect(volume.source.notes[0]).toMatch(/^gantry tilt: slices advance 15\.00° off their normal/)
    const original = await readDicomSeries(ctDir)
    for (const k of [0, 5, 11]) expect(slice(volume, k)).toEqual(slice(original, k))
  })

  it('a CT with a missing slice: resampled to even spacing, with a note naming the gap', async () => {
    const dir = await ctCopy('missing', 8, (k) => (k === 4 ? undefined : [0, 0, k * 1.5]))
    const volume = await readDicomSeries(dir)
    const original = await readDicomSeries(ctDir)
    expect(volume.size).toEqual([64, 64, 8])
    expect(volume.spacing[2]).toBeCloseTo(1.5, 9)
    expect(volume.source.dicomFiles).toHaveLength(7)
    expect(volume.source.notes[0]).toMatch(/3\.000 mm between slice3\.dcm and slice5\.dcm; resampled to 8 even slices 1\.500 mm apart/)
    for (const k of [0, 3, 5, 7]) expect(slice(volume, k)).toEqual(slice(original, k))
    const below = slice(original, 3)
    const above = slice(original, 5)
    expect(slice(volume, 4)).toEqual(below.map((v, i) => Math.round((v + above[i]!) / 2)))
  })

  it('refuses two files at one position', async () => {
    const dir = await ctCopy('duplicate', 4, (k) => [0, 0, k * 1.5])
    await copyFile(join(dir, 'slice2.dcm'), join(dir, 'slice2-copy.dcm'))
    await expectUnfaceError(readDicomSeries(dir), /duplicate: slice2(-copy)?\.dcm and slice2(-copy)?\.dcm are at the same slice position/)
  })
})
