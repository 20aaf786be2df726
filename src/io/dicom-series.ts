/**
 * A DICOM series, given as a directory, read into one Volume.
 *
 * itk-wasm decodes the pixels, but the headers are read here for three reasons: readDicomTagsNode
 * starts a wasm pipeline per file (about 80 ms each: 14 s for a 170-slice series, against a few
 * milliseconds here); itk-wasm silently reads only one series when a directory holds several; and
 * the geometry it derives assumes that slices are stacked along the row x column normal at even
 * steps, which gantry-tilted CT and series with missing slices break. The geometry of the Volume
 * is therefore computed from ImagePositionPatient and ImageOrientationPatient of every file.
 */
import { open, readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import type { HeaderText, Mat3, Vec3, Volume, VoxelArray } from './volume.js'
import { allocateVoxels, pixelTypeOf } from './volume.js'
import { UnfaceError } from './errors.js'
import { imageToVolume } from './itk-image.js'
import { assertWithinLimit } from './limits.js'
import { quietly } from './quiet-itk.js'

type Vr = 'AS' | 'CS' | 'DA' | 'DS' | 'IS' | 'LO' | 'LT' | 'PN' | 'SH' | 'ST' | 'TM' | 'UI' | 'US'

/** What a series needs from each file. VRs matter only in implicit-VR files, which omit them. */
const STRUCTURE_TAGS: ReadonlyArray<readonly [keyword: string, tag: number, vr: Vr]> = [
  ['SpecificCharacterSet', 0x0008_0005, 'CS'],
  ['Modality', 0x0008_0060, 'CS'],
  ['SeriesDescription', 0x0008_103e, 'LO'],
  ['SeriesInstanceUID', 0x0020_000e, 'UI'],
  ['ImagePositionPatient', 0x0020_0032, 'DS'],
  ['ImageOrientationPatient', 0x0020_0037, 'DS'],
  ['NumberOfFrames', 0x0028_0008, 'IS'],
  ['Rows', 0x0028_0010, 'US'],
  ['Columns', 0x0028_0011, 'US'],
  ['PixelSpacing', 0x0028_0030, 'DS'],
  ['BitsAllocated', 0x0028_0100, 'US'],
  ['PixelRepresentation', 0x0028_0103, 'US'],
  ['RescaleIntercept', 0x0028_1052, 'DS'],
  ['RescaleSlope', 0x0028_1053, 'DS'],
]

/** Text that can identify the patient, the staff or the visit (after the PS3.15 basic profile). */
const IDENTIFYING_TAGS: ReadonlyArray<readonly [keyword: string, tag: number, vr: Vr]> = [
  ['StudyDate', 0x0008_0020, 'DA'],
  ['SeriesDate', 0x0008_0021, 'DA'],
  ['AcquisitionDate', 0x0008_0022, 'DA'],
  ['ContentDate', 0x0008_0023, 'DA'],
  ['StudyTime', 0x0008_0030, 'TM'],
  ['AccessionNumber', 0x0008_0050, 'SH'],
  ['InstitutionName', 0x0008_0080, 'LO'],
  ['InstitutionAddress', 0x0008_0081, 'ST'],
  ['ReferringPhysicianName', 0x0008_0090, 'PN'],
  ['StationName', 0x0008_1010, 'SH'],
  ['StudyDescription', 0x0008_1030, 'LO'],
  ['SeriesDescription', 0x0008_103e, 'LO'],
  ['InstitutionalDepartmentName', 0x0008_1040, 'LO'],
  ['PhysiciansOfRecord', 0x0008_1048, 'PN'],
  ['PerformingPhysicianName', 0x0008_1050, 'PN'],
  ['NameOfPhysiciansReadingStudy', 0x0008_1060, 'PN'],
  ['OperatorsName', 0x0008_1070, 'PN'],
  ['PatientName', 0x0010_0010, 'PN'],
  ['PatientID', 0x0010_0020, 'LO'],
  ['IssuerOfPatientID', 0x0010_0021, 'LO'],
  ['PatientBirthDate', 0x0010_0030, 'DA'],
  ['PatientBirthTime', 0x0010_0032, 'TM'],
  ['PatientSex', 0x0010_0040, 'CS'],
  ['OtherPatientIDs', 0x0010_1000, 'LO'],
  ['OtherPatientNames', 0x0010_1001, 'PN'],
  ['PatientBirthName', 0x0010_1005, 'PN'],
  ['PatientAge', 0x0010_1010, 'AS'],
  ['PatientSize', 0x0010_1020, 'DS'],
  ['PatientWeight', 0x0010_1030, 'DS'],
  ['PatientAddress', 0x0010_1040, 'LO'],
  ['PatientMotherBirthName', 0x0010_1060, 'PN'],
  ['PatientTelephoneNumbers', 0x0010_2154, 'SH'],
  ['EthnicGroup', 0x0010_2160, 'SH'],
  ['Occupation', 0x0010_2180, 'SH'],
  ['AdditionalPatientHistory', 0x0010_21b0, 'LT'],
  ['PatientComments', 0x0010_4000, 'LT'],
  ['DeviceSerialNumber', 0x0018_1000, 'LO'],
  ['ProtocolName', 0x0018_1030, 'LO'],
  ['StudyID', 0x0020_0010, 'SH'],
  ['ImageComments', 0x0020_4000, 'LT'],
  ['RequestingPhysician', 0x0032_1032, 'PN'],
  ['RequestedProcedureDescription', 0x0032_1060, 'LO'],
  ['StudyComments', 0x0032_4000, 'LT'],
  ['PerformedProcedureStepStartDate', 0x0040_0244, 'DA'],
  ['PerformedProcedureStepID', 0x0040_0253, 'SH'],
  ['PerformedProcedureStepDescription', 0x0040_0254, 'LO'],
]

const WANTED = new Map<number, { keyword: string; vr: Vr }>(
  [...STRUCTURE_TAGS, ...IDENTIFYING_TAGS].map(([keyword, tag, vr]) => [tag, { keyword, vr }]),
)
/** Elements are stored in tag order, so parsing stops after this one, long before the pixels. */
const LAST_WANTED = Math.max(...WANTED.keys())

const TRANSFER_SYNTAX_UID = 0x0002_0010
const IMPLICIT_LITTLE = '1.2.840.10008.1.2'
const EXPLICIT_BIG = '1.2.840.10008.1.2.2'
const DEFLATED = '1.2.840.10008.1.2.1.99'
/** Explicit-VR elements with these VRs have a 4-byte length after 2 reserved bytes. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const UNDEFINED_LENGTH = 0xffff_ffff
const ITEM = 0xfffe_e000
const ITEM_END = 0xfffe_e00d
const SEQUENCE_END = 0xfffe_e0dd

/** The header ran past the bytes read so far; the caller reads the whole file and tries again. */
class Truncated extends Error {}

class Cursor {
  private readonly view: DataView

  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly littleEndian: boolean,
    readonly explicitVr: boolean,
    /** Whether `bytes` is the whole file, so that running out of bytes ends the data set. */
    readonly complete: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  need(count: number): void {
    if (this.pos + count > this.bytes.length) throw new Truncated()
  }

  u16(): number {
    this.need(2)
    const value = this.view.getUint16(this.pos, this.littleEndian)
    this.pos += 2
    return value
  }

  u32(): number {
    this.need(4)
    const value = this.view.getUint32(this.pos, this.littleEndian)
    this.pos += 4
    return value
  }

  u16At(offset: number): number {
    return this.view.getUint16(offset, this.littleEndian)
  }

  tag(): number {
    const group = this.u16()
    return group * 0x1_0000 + this.u16()
  }

  ascii(count: number): string {
    this.need(count)
    const text = String.fromCharCode(...this.bytes.subarray(this.pos, this.pos + count))
    this.pos += count
    return text
  }

  skip(count: number): void {
    this.need(count)
    this.pos += count
  }
}

interface Element {
  tag: number
  vr: string | undefined
  length: number
}

function readElementHeader(cursor: Cursor): Element {
  const tag = cursor.tag()
  // Item and delimiter tags never carry a VR, whatever the transfer syntax.
  if (!cursor.explicitVr || tag >>> 16 === 0xfffe) return { tag, vr: undefined, length: cursor.u32() }
  const vr = cursor.ascii(2)
  if (LONG_VRS.has(vr)) {
    cursor.skip(2)
    return { tag, vr, length: cursor.u32() }
  }
  return { tag, vr, length: cursor.u16() }
}

/** Skips a sequence (or UN element) of undefined length, nested ones included. */
function skipUndefinedLength(cursor: Cursor): void {
  for (;;) {
    const item = readElementHeader(cursor)
    if (item.tag === SEQUENCE_END) return
    if (item.tag !== ITEM) throw new Error(`unexpected element (${hexTag(item.tag)}) in a sequence`)
    if (item.length !== UNDEFINED_LENGTH) {
      cursor.skip(item.length)
      continue
    }
    for (;;) {
      const element = readElementHeader(cursor)
      if (element.tag === ITEM_END) break
      if (element.length === UNDEFINED_LENGTH) skipUndefinedValue(cursor, element)
      else cursor.skip(element.length)
    }
  }
}

function skipUndefinedValue(cursor: Cursor, element: Element): void {
  // PS3.5 6.2.2: the content of an UN element of undefined length is implicit VR little endian.
  if (element.vr === 'UN') {
    const inner = new Cursor(cursor.bytes, cursor.pos, true, false, cursor.complete)
    skipUndefinedLength(inner)
    cursor.pos = inner.pos
  } else {
    skipUndefinedLength(cursor)
  }
}

/** Raw values of the wanted top-level elements. */
function readElements(cursor: Cursor, values: Map<string, Uint8Array | number>): void {
  for (;;) {
    if (cursor.pos >= cursor.bytes.length) {
      if (cursor.complete) return
      throw new Truncated()
    }
    const element = readElementHeader(cursor)
    if (element.tag > LAST_WANTED) return
    if (element.length === UNDEFINED_LENGTH) {
      skipUndefinedValue(cursor, element)
      continue
    }
    const wanted = WANTED.get(element.tag)
    const start = cursor.pos
    cursor.skip(element.length)
    if (wanted === undefined) continue
    if (wanted.vr !== 'US') values.set(wanted.keyword, cursor.bytes.subarray(start, cursor.pos))
    else if (element.length >= 2) values.set(wanted.keyword, cursor.u16At(start))
  }
}

export type DicomHeader = ReadonlyMap<string, string>

function hasPreamble(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && String.fromCharCode(...bytes.subarray(128, 132)) === 'DICM'
}

/**
 * The tags this module needs from one file, as strings (multiple values joined by a backslash,
 * padding removed), or undefined when the bytes are not DICOM. Files with a Part 10 preamble
 * are recognised by "DICM"; older files without one, by starting with a group 0x0008 element.
 * Throws `Truncated` when `bytes` is not `complete` and ends before the last wanted tag.
 */
function parseHeader(bytes: Uint8Array, complete: boolean): DicomHeader | undefined {
  const preamble = hasPreamble(bytes)
  const firstGroup = bytes.length >= 8 ? (bytes[0] as number) | ((bytes[1] as number) << 8) : 0
  if (!preamble && firstGroup !== 0x0002 && firstGroup !== 0x0008) return undefined
  let pos = preamble ? 132 : 0
  let transferSyntax: string | undefined
  // The file meta group is always explicit VR little endian.
  const meta = new Cursor(bytes, pos, true, true, complete)
  while (meta.pos + 2 <= bytes.length && ((bytes[meta.pos] as number) | ((bytes[meta.pos + 1] as number) << 8)) === 0x0002) {
    const element = readElementHeader(meta)
    const start = meta.pos
    meta.skip(element.length)
    if (element.tag === TRANSFER_SYNTAX_UID) transferSyntax = trimValue(latin1(bytes.subarray(start, meta.pos)))
  }
  pos = meta.pos
  if (transferSyntax === DEFLATED) throw new Error('uses the deflated transfer syntax, which unface cannot read')
  let explicitVr = transferSyntax !== IMPLICIT_LITTLE
  if (transferSyntax === undefined) {
    // Without a meta group the encoding is not stated: an explicit VR shows as two capitals.
    const vr = bytes.subarray(pos + 4, pos + 6)
    explicitVr = vr.length === 2 && vr.every((b) => b >= 0x41 && b <= 0x5a)
  }
  const raw = new Map<string, Uint8Array | number>()
  readElements(new Cursor(bytes, pos, transferSyntax !== EXPLICIT_BIG, explicitVr, complete), raw)
  const charset = raw.get('SpecificCharacterSet')
  const utf8 = charset instanceof Uint8Array && latin1(charset).includes('ISO_IR 192')
  const header = new Map<string, string>()
  for (const [keyword, value] of raw) {
    header.set(keyword, typeof value === 'number' ? String(value) : trimValue(utf8 ? new TextDecoder().decode(value) : latin1(value)))
  }
  return header
}

function latin1(bytes: Uint8Array): string {
  return new TextDecoder('latin1').decode(bytes)
}

/** Values are padded to even length with a space or NUL; multiple values each may be padded. */
function trimValue(text: string): string {
  return text
    .split('\\')
    .map((part) => part.replace(/^[\s\0]+|[\s\0]+$/g, ''))
    .join('\\')
}

function hexTag(tag: number): string {
  const hex = tag.toString(16).padStart(8, '0')
  return `${hex.slice(0, 4)},${hex.slice(4)}`
}

/** Most headers end within the first 64 KiB, so the rest of the file is read only when needed. */
const HEAD_BYTES = 64 * 1024

/** The header of one file, or undefined when the file is not DICOM. */
export async function readDicomHeader(file: string): Promise<DicomHeader | undefined> {
  const handle = await open(file, 'r')
  try {
    const { size } = await handle.stat()
    let length = Math.min(size, HEAD_BYTES)
    for (;;) {
      const bytes = new Uint8Array(length)
      await handle.read(bytes, 0, length, 0)
      try {
        return parseHeader(bytes, length === size)
      } catch (error) {
        if (error instanceof Truncated && length < size) {
          length = size
          continue
        }
        // Without "DICM", a file that merely starts with the bytes of a group 0x0008 tag.
        if (!hasPreamble(bytes)) return undefined
        if (error instanceof Truncated) throw new UnfaceError('is a truncated DICOM file', { file })
        throw new UnfaceError(`is not a readable DICOM file: ${(error as Error).message}`, { file, cause: error })
      }
    }
  } finally {
    await handle.close()
  }
}

/** One slice as the geometry needs it: where it is, and a name for messages. */
export interface SlicePosition {
  name: string
  position: Vec3
}

export interface SliceStack {
  /** Indices into the input slices, in stack order (ascending along the plane normal). */
  order: number[]
  origin: Vec3
  /** Columns: row direction, column direction, and the direction in which slices advance. */
  direction: Mat3
  spacing: Vec3
  /** Slices in the volume; more than the input when uneven gaps are filled by resampling. */
  depth: number
  /** Distance of each sorted input slice from the first, along the slice direction. */
  offsets: number[]
  /** Whether the volume's slices must be interpolated from the input ones (uneven gaps). */
  resampled: boolean
  notes: string[]
}

/** Positions closer than this along the normal are the same slice. */
const SAME_POSITION_MM = 0.01
/** Gaps may differ from the median by this much, absolute or relative, whichever is larger. */
const GAP_TOLERANCE_MM = 0.01
const GAP_TOLERANCE_RELATIVE = 0.01
/**
 * A tilt is taken from the positions once following the normal would misplace the last slice by
 * this fraction of a pixel: far above the rounding of positions in headers, far below a real tilt.
 */
const TILT_TOLERANCE_PIXELS = 0.1
/** A slice further than this from the line through the first and last is not part of one stack. */
const OFF_LINE_TOLERANCE_PIXELS = 0.5

/**
 * The geometry of a stack of parallel slices, from their ImagePositionPatient, the shared
 * ImageOrientationPatient and PixelSpacing (row spacing, column spacing).
 *
 * Gantry tilt: the slices advance along a line that is not the plane normal. The third
 * direction column then follows the positions (a sheared, non-orthogonal matrix), so every voxel
 * stays where the scanner put it; nothing is resampled.
 *
 * Uneven gaps (missing slices, mixed spacing): no regular grid fits, so the volume gets even
 * slices at the smallest gap, interpolated between neighbours, from the first slice to the last.
 */
export function planSliceStack(
  source: string,
  slices: readonly SlicePosition[],
  orientation: readonly number[],
  pixelSpacing: readonly number[],
): SliceStack {
  const row = normalize(orientation.slice(0, 3) as Vec3)
  const column = normalize(orientation.slice(3, 6) as Vec3)
  const normal = cross(row, column)
  const [rowSpacing, columnSpacing] = pixelSpacing as [number, number]
  if (slices.length < 2) {
    throw new UnfaceError(`the series has ${slices.length} slice; unface needs a 3D volume`, { file: source })
  }
  const order = slices.map((_, i) => i).sort((a, b) => dot(at(slices, a).position, normal) - dot(at(slices, b).position, normal))
  const sorted = order.map((i) => at(slices, i))
  const first = at(sorted, 0)
  const last = at(sorted, sorted.length - 1)

  for (let i = 1; i < sorted.length; i++) {
    const a = at(sorted, i - 1)
    const b = at(sorted, i)
    if (dot(sub(b.position, a.position), normal) < SAME_POSITION_MM) {
      throw new UnfaceError(
        `${a.name} and ${b.name} are at the same slice position (${formatVec(a.position)}); ` +
          'a series with several images per position (echoes, phases, repeats) cannot be read as one volume',
        { file: source },
      )
    }
  }

  const extent = sub(last.position, first.position)
  const slope = normalize(extent)
  const pixel = Math.min(rowSpacing, columnSpacing)
  for (const slice of sorted) {
    const along = sub(slice.position, first.position)
    const off = Math.hypot(...sub(along, scale(slope, dot(along, slope))))
    if (off > OFF_LINE_TOLERANCE_PIXELS * pixel) {
      throw new UnfaceError(
        `slice positions do not lie on one line (${slice.name} is ${off.toFixed(2)} mm off it); ` +
          'a series made of several stacks cannot be read as one volume',
        { file: source },
      )
    }
  }

  const notes: string[] = []
  const sideways = Math.hypot(...sub(extent, scale(normal, dot(extent, normal))))
  const tilted = sideways > TILT_TOLERANCE_PIXELS * pixel
  const sliceDirection = tilted ? slope : normal
  if (tilted) {
    const degrees = (Math.acos(Math.min(1, dot(slope, normal))) * 180) / Math.PI
    notes.push(
      `gantry tilt: slices advance ${degrees.toFixed(2)}° off their normal (the last slice is shifted ` +
        `${sideways.toFixed(1)} mm in-plane); the third voxel axis follows the slice positions, so the ` +
        'direction matrix is sheared (not orthogonal); voxels were not resampled',
    )
  }

  const offsets = sorted.map((slice) => dot(sub(slice.position, first.position), sliceDirection))
  const gaps = offsets.slice(1).map((offset, i) => offset - at(offsets, i))
  const median = medianOf(gaps)
  const tolerance = Math.max(GAP_TOLERANCE_MM, GAP_TOLERANCE_RELATIVE * median)
  const irregular = gaps.flatMap((gap, i) => (Math.abs(gap - median) > tolerance ? [i] : []))
  const span = at(offsets, offsets.length - 1)
  let depth = sorted.length
  let step = span / (sorted.length - 1)
  if (irregular.length > 0) {
    const smallest = Math.min(...gaps)
    depth = Math.round(span / smallest) + 1
    step = span / (depth - 1)
    const listed = irregular
      .slice(0, 5)
      .map((i) => `${at(gaps, i).toFixed(3)} mm between ${at(sorted, i).name} and ${at(sorted, i + 1).name}`)
      .join(', ')
    const more = irregular.length > 5 ? ` and ${irregular.length - 5} more` : ''
    notes.push(
      `uneven slice spacing: the median gap is ${median.toFixed(3)} mm but there are ${listed}${more}; ` +
        `resampled to ${depth} even slices ${step.toFixed(3)} mm apart by linear interpolation between neighbouring slices`,
    )
  }
  const direction: Mat3 = [
    row[0], column[0], sliceDirection[0],
    row[1], column[1], sliceDirection[1],
    row[2], column[2], sliceDirection[2],
  ]
  return {
    order,
    origin: [...first.position],
    direction,
    spacing: [columnSpacing, rowSpacing, step],
    depth,
    offsets,
    resampled: irregular.length > 0,
    notes,
  }
}

/** Fills the even slices of a resampled stack by linear interpolation between input slices. */
export function resampleSlices(data: VoxelArray, sliceVoxels: number, offsets: readonly number[], depth: number, step: number): VoxelArray {
  const out = allocateVoxels(pixelTypeOf(data), sliceVoxels * depth)
  const integral = !(data instanceof Float32Array || data instanceof Float64Array)
  let below = 0
  for (let k = 0; k < depth; k++) {
    const target = k * step
    while (below < offsets.length - 2 && at(offsets, below + 1) <= target) below++
    const a = at(offsets, below)
    const weight = Math.min(1, Math.max(0, (target - a) / (at(offsets, below + 1) - a)))
    const from = below * sliceVoxels
    const to = from + sliceVoxels
    const base = k * sliceVoxels
    for (let i = 0; i < sliceVoxels; i++) {
      const value = (1 - weight) * (data[from + i] as number) + weight * (data[to + i] as number)
      out[base + i] = integral ? Math.round(value) : value
    }
  }
  return out
}

interface DicomFile {
  file: string
  header: DicomHeader
}

/**
 * Reads the DICOM series in `dir` (searched recursively). A directory holding several series
 * needs `seriesUid`; the error lists them.
 */
export async function readDicomSeries(dir: string, options: { seriesUid?: string; maxVoxels?: number } = {}): Promise<Volume> {
  const files = await listFiles(dir)
  const images: DicomFile[] = []
  let imageless = 0
  for (const file of files) {
    const header = await readDicomHeader(file)
    if (header === undefined) continue
    // DICOMDIR, structured reports and presentation states are DICOM but hold no image.
    if (header.has('Rows') && header.has('Columns') && header.has('SeriesInstanceUID')) images.push({ file, header })
    else imageless++
  }
  if (images.length === 0) {
    const detail = imageless > 0 ? ` (only ${imageless} DICOM files without images, such as a DICOMDIR)` : ''
    throw new UnfaceError(`no DICOM files found${detail}`, { file: dir })
  }
  const series = chooseSeries(dir, groupBySeries(images), options.seriesUid)
  const first = at(series, 0)
  const label = `series ${field(first, 'SeriesInstanceUID')}`
  const frames = Number(first.header.get('NumberOfFrames') ?? '1')
  if (frames > 1) {
    throw new UnfaceError(
      `${label} is multi-frame (${frames} frames in ${path.basename(first.file)}); unface reads one image per file: ` +
        'itk-wasm ignores the per-frame geometry of enhanced DICOM, so convert it first (e.g. dcm2niix)',
      { file: dir },
    )
  }
  const rows = Number(field(first, 'Rows'))
  const columns = Number(field(first, 'Columns'))
  const orientation = numbers(first, 'ImageOrientationPatient', 6, dir)
  const pixelSpacing = numbers(first, 'PixelSpacing', 2, dir)
  for (const image of series) {
    const other = `${path.basename(image.file)} differs from ${path.basename(first.file)}`
    if (Number(field(image, 'Rows')) !== rows || Number(field(image, 'Columns')) !== columns) {
      throw new UnfaceError(`${label}: ${other} in image size; it cannot be read as one volume`, { file: dir })
    }
    if (!close(numbers(image, 'ImageOrientationPatient', 6, dir), orientation, 1e-4)) {
      throw new UnfaceError(`${label}: ${other} in orientation (a localizer, or several stacks); it cannot be read as one volume`, {
        file: dir,
      })
    }
    if (!close(numbers(image, 'PixelSpacing', 2, dir), pixelSpacing, 1e-4)) {
      throw new UnfaceError(`${label}: ${other} in pixel spacing; it cannot be read as one volume`, { file: dir })
    }
  }
  const stack = planSliceStack(
    dir,
    series.map((image) => ({ name: path.basename(image.file), position: numbers(image, 'ImagePositionPatient', 3, dir) as Vec3 })),
    orientation,
    pixelSpacing,
  )
  const sortedFiles = stack.order.map((i) => at(series, i).file)
  if (options.maxVoxels !== undefined) assertWithinLimit(rows * columns * stack.depth, options.maxVoxels, dir)

  // Loaded on first use: importing it costs every command about 0.1 s, and most inputs are not DICOM.
  const { readImageDicomFileSeriesNode } = await import('@itk-wasm/dicom')
  const result = await quietly(() => readImageDicomFileSeriesNode({ inputImages: sortedFiles })).catch((error: unknown) => {
    const reason = error instanceof Error && error.message ? `: ${error.message.split('\n')[0]}` : ''
    throw new UnfaceError(`itk-wasm could not decode the pixels of ${label}${reason}`, { file: dir, cause: error })
  })
  const image = result.outputImage
  const itkOrder = result.sortedFilenames as string[]
  if (image.size[0] !== columns || image.size[1] !== rows || image.size[2] !== sortedFiles.length) {
    throw new UnfaceError(
      `itk-wasm read ${label} as ${image.size.join('x')} instead of ${columns}x${rows}x${sortedFiles.length}`,
      { file: dir },
    )
  }
  const notes = [...stack.notes]
  const volume = imageToVolume(image, { path: dir, format: 'dicom', dicomFiles: sortedFiles, notes }, first.header.get('Modality'))
  const sliceVoxels = columns * rows
  let data = inStackOrder(volume.data, sliceVoxels, itkOrder, sortedFiles, dir)
  if (stack.resampled) data = resampleSlices(data, sliceVoxels, stack.offsets, stack.depth, stack.spacing[2])
  if (volume.modality === 'CT' && minimum(data) >= 0) {
    notes.push(
      'CT values are all 0 or above, where Hounsfield units put air near -1000: the series probably stores ' +
        'offset values (commonly HU + 1024) without saying so in RescaleIntercept; values were kept as stored',
    )
  }
  const stored = stack.resampled ? undefined : storedIntegers(data, series.map((image) => image.header))
  return {
    ...volume,
    ...(stored === undefined ? { data } : { data: stored.data, pixelType: stored.pixelType, scaling: stored.scaling }),
    size: [columns, rows, stack.depth],
    spacing: stack.spacing,
    origin: stack.origin,
    direction: stack.direction,
    headerText: identifyingText(stack.order.map((i) => at(series, i).header)),
  }
}

/**
 * itk-wasm applies RescaleSlope/Intercept and hands back floats (float64 for the Philips MPRAGE:
 * 89 MB). When every slice shares one rescale, the stored integers are recovered exactly and the
 * rescale kept as NIfTI-style scaling, as dcm2niix does: the stored pixel type survives and the
 * volume takes a quarter of the memory.
 */
function storedIntegers(
  data: VoxelArray,
  headers: readonly DicomHeader[],
): { data: Int16Array | Uint16Array; pixelType: 'int16' | 'uint16'; scaling: { slope: number; intercept: number } } | undefined {
  if (!(data instanceof Float32Array || data instanceof Float64Array)) return undefined
  const rescales = new Set(headers.map((h) => `${h.get('RescaleSlope') ?? ''}|${h.get('RescaleIntercept') ?? ''}|${h.get('BitsAllocated') ?? ''}|${h.get('PixelRepresentation') ?? ''}`))
  if (rescales.size !== 1) return undefined
  const first = headers[0]
  const slope = Number(first?.get('RescaleSlope') ?? '1')
  const intercept = Number(first?.get('RescaleIntercept') ?? '0')
  if (first?.get('BitsAllocated') !== '16' || !Number.isFinite(slope) || slope === 0 || !Number.isFinite(intercept)) return undefined
  const signed = first.get('PixelRepresentation') === '1'
  const out = signed ? new Int16Array(data.length) : new Uint16Array(data.length)
  for (let i = 0; i < data.length; i++) {
    const value = data[i] as number
    const raw = Math.round((value - intercept) / slope)
    // Any voxel that does not come back exactly means the floats were not plain rescaled integers.
    if (raw * slope + intercept !== value && Math.abs(raw * slope + intercept - value) > 1e-6 * Math.max(1, Math.abs(value))) return undefined
    out[i] = raw
    if (out[i] !== raw) return undefined
  }
  return { data: out, pixelType: signed ? 'int16' : 'uint16', scaling: { slope, intercept } }
}

async function listFiles(dir: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const reason = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be listed (${code})`
    throw new UnfaceError(reason, { file: dir, cause: error })
  }
  const files: string[] = []
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) files.push(...(await listFiles(full)))
    else if (entry.isFile()) files.push(full)
    // Linked files are followed (annexed datasets are made of them); linked folders are not, as they may loop.
    else if (entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile()) files.push(full)
  }
  return files
}

function groupBySeries(images: DicomFile[]): Map<string, DicomFile[]> {
  const series = new Map<string, DicomFile[]>()
  for (const image of images) {
    const uid = field(image, 'SeriesInstanceUID')
    series.set(uid, [...(series.get(uid) ?? []), image])
  }
  return series
}

function chooseSeries(dir: string, series: Map<string, DicomFile[]>, seriesUid: string | undefined): DicomFile[] {
  const listing = () =>
    [...series.values()]
      .map((files) => {
        const header = at(files, 0).header
        const description = header.get('SeriesDescription')
        const details = [
          header.get('Modality') || 'no modality',
          ...(description ? [`"${description}"`] : []),
          `${files.length} ${files.length === 1 ? 'file' : 'files'}`,
        ]
        return `${field(at(files, 0), 'SeriesInstanceUID')} (${details.join(', ')})`
      })
      .join('; ')
  if (seriesUid !== undefined) {
    const chosen = series.get(seriesUid.trim())
    if (chosen === undefined) throw new UnfaceError(`has no DICOM series ${seriesUid}; it holds ${listing()}`, { file: dir })
    return chosen
  }
  if (series.size > 1) {
    throw new UnfaceError(`holds ${series.size} DICOM series; choose one with --series UID: ${listing()}`, { file: dir })
  }
  return at([...series.values()], 0)
}

/** itk-wasm sorts the files itself; its slices are put back in this module's order if they differ. */
function inStackOrder(
  data: VoxelArray,
  sliceVoxels: number,
  itkOrder: readonly string[],
  sortedFiles: readonly string[],
  dir: string,
): VoxelArray {
  if (itkOrder.every((file, i) => file === sortedFiles[i])) return data
  const itkIndex = new Map(itkOrder.map((file, i) => [file, i]))
  const out = allocateVoxels(pixelTypeOf(data), data.length)
  sortedFiles.forEach((file, k) => {
    const from = itkIndex.get(file)
    if (from === undefined) throw new UnfaceError(`itk-wasm left ${path.basename(file)} out of the series`, { file: dir })
    out.set(data.subarray(from * sliceVoxels, (from + 1) * sliceVoxels), k * sliceVoxels)
  })
  return out
}

/** Every distinct value of each identifying field across the series, in slice order. */
function identifyingText(headers: readonly DicomHeader[]): HeaderText[] {
  const found: HeaderText[] = []
  for (const [keyword] of IDENTIFYING_TAGS) {
    const values = new Set(headers.map((header) => header.get(keyword) ?? '').filter((value) => value.replaceAll('\\', '') !== ''))
    for (const value of values) found.push({ field: keyword, value })
  }
  return found
}

function field(image: DicomFile, keyword: string): string {
  const value = image.header.get(keyword)
  if (value === undefined) throw new Error(`${keyword} missing from ${image.file}`)
  return value
}

function numbers(image: DicomFile, keyword: string, count: number, dir: string): number[] {
  const name = path.basename(image.file)
  const text = image.header.get(keyword)
  if (text === undefined || text === '') {
    throw new UnfaceError(`${name} has no ${keyword}, so its slices cannot be placed in space`, { file: dir })
  }
  const values = text.split('\\').map(Number)
  if (values.length !== count || !values.every(Number.isFinite)) {
    throw new UnfaceError(`${name} has an unreadable ${keyword} ("${text}")`, { file: dir })
  }
  return values
}

function minimum(data: VoxelArray): number {
  let min = Infinity
  for (let i = 0; i < data.length; i++) if ((data[i] as number) < min) min = data[i] as number
  return min
}

function close(a: readonly number[], b: readonly number[], tolerance: number): boolean {
  return a.length === b.length && a.every((value, i) => Math.abs(value - (b[i] as number)) <= tolerance)
}

function at<T>(list: readonly T[], index: number): T {
  const value = list[index]
  if (value === undefined) throw new Error(`index ${index} out of range (${list.length})`)
  return value
}

function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

function sub(a: Vec3, b: Vec3): Vec3 {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

function scale(a: Vec3, factor: number): Vec3 {
  return [a[0] * factor, a[1] * factor, a[2] * factor]
}

function normalize(a: Vec3): Vec3 {
  return scale(a, 1 / Math.hypot(...a))
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? at(sorted, mid) : (at(sorted, mid - 1) + at(sorted, mid)) / 2
}

function formatVec(v: Vec3): string {
  return v.map((x) => x.toFixed(2)).join(', ')
}
