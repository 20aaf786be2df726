/**
 * NIfTI-1 and NIfTI-2, read and written here rather than through itk-wasm, because ITK's NIfTI
 * reader applies scl_slope and hands back float32, and its writer re-derives qform/sform and their
 * codes. Users expect a defaced NIfTI to differ from the original only in the facial voxels and
 * the scrubbed text, so the original header bytes are carried through and patched in place.
 */
import type { HeaderText, IntensityScaling, Mat3, PixelType, Vec3, VoxelArray } from './volume.js'
import { allocateVoxels } from './volume.js'
import { UnfaceError } from './errors.js'
import { assertWithinLimit } from './limits.js'
import { mat3Determinant } from './matrix.js'

const DATATYPE_TO_PIXEL: ReadonlyMap<number, PixelType> = new Map([
  [2, 'uint8'],
  [4, 'int16'],
  [8, 'int32'],
  [16, 'float32'],
  [64, 'float64'],
  [256, 'int8'],
  [512, 'uint16'],
  [768, 'uint32'],
])
const PIXEL_TO_DATATYPE: ReadonlyMap<PixelType, number> = new Map([...DATATYPE_TO_PIXEL].map(([code, type]) => [type, code]))
const BYTES_PER_VOXEL: Record<PixelType, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
}

/** Byte offsets of the fields this module reads or patches, per header version. */
interface Layout {
  headerSize: 348 | 540
  /** Where the voxel data starts when the header carries no extensions. */
  bareVoxOffset: number
  float: 4 | 8
  dim: [offset: number, width: 2 | 8]
  datatype: number
  bitpix: number
  pixdim: number
  voxOffset: [offset: number, kind: 'f32' | 'i64']
  sclSlope: number
  sclInter: number
  qformCode: [offset: number, width: 2 | 4]
  sformCode: [offset: number, width: 2 | 4]
  quatern: number
  srow: number
  xyztUnits: [offset: number, width: 1 | 4]
  /** Free-text fields that can carry names, dates and comments. */
  text: ReadonlyArray<{ field: string; offset: number; length: number }>
}

const NIFTI1: Layout = {
  headerSize: 348,
  bareVoxOffset: 352,
  float: 4,
  dim: [40, 2],
  datatype: 70,
  bitpix: 72,
  pixdim: 76,
  voxOffset: [108, 'f32'],
  sclSlope: 112,
  sclInter: 116,
  qformCode: [252, 2],
  sformCode: [254, 2],
  quatern: 256,
  srow: 280,
  xyztUnits: [123, 1],
  text: [
    { field: 'data_type', offset: 4, length: 10 },
    { field: 'db_name', offset: 14, length: 18 },
    { field: 'descrip', offset: 148, length: 80 },
    { field: 'aux_file', offset: 228, length: 24 },
    { field: 'intent_name', offset: 328, length: 16 },
  ],
}

const NIFTI2: Layout = {
  headerSize: 540,
  bareVoxOffset: 544,
  float: 8,
  dim: [16, 8],
  datatype: 12,
  bitpix: 14,
  pixdim: 104,
  voxOffset: [168, 'i64'],
  sclSlope: 176,
  sclInter: 184,
  qformCode: [344, 4],
  sformCode: [348, 4],
  quatern: 352,
  srow: 400,
  xyztUnits: [500, 4],
  text: [
    { field: 'descrip', offset: 240, length: 80 },
    { field: 'aux_file', offset: 320, length: 24 },
    { field: 'intent_name', offset: 508, length: 16 },
  ],
}

export interface NiftiHeader {
  layout: Layout
  littleEndian: boolean
  /** dim[0..7]. */
  dim: number[]
  pixelType: PixelType
  pixdim: number[]
  voxOffset: number
  scaling?: IntensityScaling
  qformCode: number
  sformCode: number
  /** Voxel index -> RAS mm, from the transform NIfTI says to prefer. */
  affineRas: { linear: Mat3; offset: Vec3 }
  headerText: HeaderText[]
  /** The header and any extensions: bytes [0, voxOffset). */
  bytes: Uint8Array
}

export interface NiftiImage {
  header: NiftiHeader
  data: VoxelArray
}

/** Parses the header; `file` only names the source in errors. */
export function parseNiftiHeader(buffer: Uint8Array, file: string): NiftiHeader {
  if (buffer.length < 348) throw new UnfaceError('not a NIfTI file (shorter than a NIfTI header)', { file })
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  let layout: Layout | undefined
  let littleEndian = true
  for (const le of [true, false]) {
    const sizeofHdr = view.getInt32(0, le)
    if (sizeofHdr === 348) layout = NIFTI1
    if (sizeofHdr === 540) layout = NIFTI2
    if (layout !== undefined) {
      littleEndian = le
      break
    }
  }
  if (layout === undefined) throw new UnfaceError('not a NIfTI file (bad sizeof_hdr)', { file })
  if (buffer.length < layout.headerSize) throw new UnfaceError('truncated NIfTI header', { file })
  const io = new FieldIO(view, littleEndian)

  const dim = Array.from({ length: 8 }, (_, i) => io.int(layout.dim[0] + i * layout.dim[1], layout.dim[1]))
  const datatype = io.int(layout.datatype, 2)
  const pixelType = DATATYPE_TO_PIXEL.get(datatype)
  if (pixelType === undefined) {
    throw new UnfaceError(`unsupported NIfTI datatype ${datatype} (need a scalar integer or float type)`, { file })
  }
  const pixdim = Array.from({ length: 8 }, (_, i) => io.float(layout.pixdim + i * layout.float, layout.float))
  const voxOffset =
    layout.voxOffset[1] === 'f32' ? Math.round(view.getFloat32(layout.voxOffset[0], littleEndian)) : io.int(layout.voxOffset[0], 8)
  const isSingleFile = buffer.length >= layout.headerSize + 4 && voxOffset >= layout.headerSize
  if (!isSingleFile) throw new UnfaceError('NIfTI header/image pairs (.hdr/.img) are not supported; use .nii or .nii.gz', { file })

  const slope = io.float(layout.sclSlope, layout.float)
  const intercept = io.float(layout.sclInter, layout.float)
  // NIfTI says a slope of 0 (or not finite) means "no scaling".
  const scaling = Number.isFinite(slope) && slope !== 0 && (slope !== 1 || intercept !== 0) ? { slope, intercept } : undefined
  const qformCode = io.int(layout.qformCode[0], layout.qformCode[1])
  const sformCode = io.int(layout.sformCode[0], layout.sformCode[1])
  const headerBytes = buffer.subarray(0, Math.min(voxOffset, buffer.length))

  return {
    layout,
    littleEndian,
    dim,
    pixelType,
    pixdim,
    voxOffset,
    ...(scaling === undefined ? {} : { scaling }),
    qformCode,
    sformCode,
    affineRas: preferredAffine(io, layout, pixdim, qformCode, sformCode),
    headerText: readHeaderText(buffer, layout, voxOffset, littleEndian),
    bytes: headerBytes,
  }
}

/** Checks the dimensions announced by a header and returns the file size they imply. */
export function expectedNiftiBytes(start: Uint8Array, file: string, maxVoxels: number): number {
  const header = parseNiftiHeader(start, file)
  const [nx, ny, nz] = volumeExtent(header, file)
  assertWithinLimit(nx * ny * nz, maxVoxels, file)
  return header.voxOffset + nx * ny * nz * BYTES_PER_VOXEL[header.pixelType]
}

/** Decodes a whole (already gunzipped) .nii. */
export function decodeNifti(buffer: Uint8Array, file: string, maxVoxels: number): NiftiImage {
  const header = parseNiftiHeader(buffer, file)
  const [nx, ny, nz] = volumeExtent(header, file)
  const count = nx * ny * nz
  assertWithinLimit(count, maxVoxels, file)
  const bytesPerVoxel = BYTES_PER_VOXEL[header.pixelType]
  const needed = header.voxOffset + count * bytesPerVoxel
  if (buffer.length < needed) {
    throw new UnfaceError(`truncated NIfTI: expected ${needed} bytes, found ${buffer.length}`, { file })
  }
  const data = allocateVoxels(header.pixelType, count)
  const target = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  target.set(buffer.subarray(header.voxOffset, needed))
  if (!header.littleEndian) swapBytes(target, bytesPerVoxel)
  return { header: { ...header, dim: [3, nx, ny, nz, 1, 1, 1, 1] }, data }
}

/** The 3D extent, refusing 2D images and series of several frames. */
function volumeExtent(header: NiftiHeader, file: string): [number, number, number] {
  const { dim } = header
  const rank = dim[0] ?? 0
  if (rank < 1 || rank > 7) throw new UnfaceError(`invalid NIfTI dim[0]=${rank}`, { file })
  const extent = (i: number) => (i <= rank ? Math.max(1, dim[i] ?? 1) : 1)
  const [nx, ny, nz] = [extent(1), extent(2), extent(3)]
  if (rank < 3 || nz === 1) throw new UnfaceError(`is a 2D image (${nx}x${ny}); unface needs a 3D head volume`, { file })
  const frames = extent(4) * extent(5) * extent(6) * extent(7)
  if (frames > 1) {
    throw new UnfaceError(
      `is a 4D series (${nx}x${ny}x${nz} with ${frames} frames); unface defaces 3D volumes only: split the frames first`,
      { file },
    )
  }
  return [nx, ny, nz]
}


/**
 * A .nii for `data`: the original header when there is one (same grid and type), otherwise a
 * fresh NIfTI-1 header whose qform and sform both carry the geometry. The file comes back as its
 * two parts, the header (up to vox_offset) and the voxels, which are the volume's own bytes unless
 * they must be byte-swapped: a joined copy would cost a second full-size buffer.
 */
export function encodeNifti(options: {
  original: Uint8Array | undefined
  keepHeaderText: boolean
  data: VoxelArray
  pixelType: PixelType
  size: Vec3
  spacing: Vec3
  affineRas: { linear: Mat3; offset: Vec3 }
  scaling: IntensityScaling | undefined
}): [header: Uint8Array, voxels: Uint8Array] {
  const header =
    options.original === undefined
      ? freshHeader(options.pixelType, options.size, options.spacing, options.affineRas, options.scaling)
      : carriedHeader(options.original, options.keepHeaderText)
  const parsed = parseNiftiHeader(concatBytes(header, new Uint8Array(4)), 'output')
  const bytesPerVoxel = BYTES_PER_VOXEL[options.pixelType]
  if (parsed.pixelType !== options.pixelType) {
    throw new Error(`NIfTI header says ${parsed.pixelType} but the voxels are ${options.pixelType}`)
  }
  const headerPart = new Uint8Array(parsed.voxOffset)
  headerPart.set(header.subarray(0, Math.min(header.length, parsed.voxOffset)))
  const voxels = new Uint8Array(options.data.buffer, options.data.byteOffset, options.data.byteLength)
  if (parsed.littleEndian) return [headerPart, voxels]
  const swapped = voxels.slice()
  swapBytes(swapped, bytesPerVoxel)
  return [headerPart, swapped]
}

/** The original header, with its free text and extensions removed unless asked to keep them. */
function carriedHeader(original: Uint8Array, keepHeaderText: boolean): Uint8Array {
  const parsed = parseNiftiHeader(concatBytes(original, new Uint8Array(4)), 'original header')
  if (keepHeaderText) return original.slice()
  const { layout, littleEndian } = parsed
  const out = new Uint8Array(layout.bareVoxOffset)
  out.set(original.subarray(0, layout.headerSize))
  for (const { offset, length } of layout.text) out.fill(0, offset, offset + length)
  const view = new DataView(out.buffer)
  if (layout.voxOffset[1] === 'f32') view.setFloat32(layout.voxOffset[0], layout.bareVoxOffset, littleEndian)
  else view.setBigInt64(layout.voxOffset[0], BigInt(layout.bareVoxOffset), littleEndian)
  // Bytes 348..351 (the extender) stay zero: no extensions follow.
  return out
}

function freshHeader(
  pixelType: PixelType,
  size: Vec3,
  spacing: Vec3,
  affine: { linear: Mat3; offset: Vec3 },
  scaling: IntensityScaling | undefined,
): Uint8Array {
  const datatype = PIXEL_TO_DATATYPE.get(pixelType)
  if (datatype === undefined) throw new Error(`no NIfTI datatype for ${pixelType}`)
  const out = new Uint8Array(NIFTI1.bareVoxOffset)
  const view = new DataView(out.buffer)
  const le = true
  view.setInt32(0, 348, le)
  out[38] = 'r'.charCodeAt(0)
  view.setInt16(40, 3, le)
  size.forEach((n, i) => view.setInt16(42 + 2 * i, n, le))
  for (let i = 4; i < 8; i++) view.setInt16(40 + 2 * i, 1, le)
  view.setInt16(70, datatype, le)
  view.setInt16(72, BYTES_PER_VOXEL[pixelType] * 8, le)
  const { quaternion, qfac } = rotationToQuaternion(affine.linear, spacing)
  view.setFloat32(76, qfac, le)
  spacing.forEach((s, i) => view.setFloat32(80 + 4 * i, s, le))
  view.setFloat32(108, NIFTI1.bareVoxOffset, le)
  view.setFloat32(112, scaling?.slope ?? 1, le)
  view.setFloat32(116, scaling?.intercept ?? 0, le)
  out[123] = 2 // mm
  const scannerAnat = 1
  // A qform can only hold a rotation: for a sheared grid (gantry-tilted CT) it would be wrong, and
  // readers fall back to the qform when the sform is sheared, so only the sform is written then.
  view.setInt16(252, isOrthogonal(affine.linear) ? scannerAnat : 0, le)
  view.setInt16(254, scannerAnat, le)
  quaternion.forEach((q, i) => view.setFloat32(256 + 4 * i, q, le))
  affine.offset.forEach((o, i) => view.setFloat32(268 + 4 * i, o, le))
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) view.setFloat32(280 + 16 * r + 4 * c, affine.linear[r * 3 + c] as number, le)
    view.setFloat32(280 + 16 * r + 12, affine.offset[r] as number, le)
  }
  out.set([0x6e, 0x2b, 0x31, 0x00], 344) // "n+1\0"
  return out
}

class FieldIO {
  constructor(
    private readonly view: DataView,
    private readonly littleEndian: boolean,
  ) {}

  int(offset: number, width: 1 | 2 | 4 | 8): number {
    switch (width) {
      case 1:
        return this.view.getUint8(offset)
      case 2:
        return this.view.getInt16(offset, this.littleEndian)
      case 4:
        return this.view.getInt32(offset, this.littleEndian)
      case 8:
        return Number(this.view.getBigInt64(offset, this.littleEndian))
    }
  }

  float(offset: number, width: 4 | 8): number {
    return width === 4 ? this.view.getFloat32(offset, this.littleEndian) : this.view.getFloat64(offset, this.littleEndian)
  }
}

/**
 * NIfTI's rule: the sform when sform_code > 0, else the qform when qform_code > 0, else pixdim
 * alone. A sheared sform cannot be a direction matrix, so then the qform is used, as ITK does.
 */
function preferredAffine(
  io: FieldIO,
  layout: Layout,
  pixdim: number[],
  qformCode: number,
  sformCode: number,
): { linear: Mat3; offset: Vec3 } {
  if (sformCode > 0) {
    const row = (r: number) => Array.from({ length: 4 }, (_, c) => io.float(layout.srow + (r * 4 + c) * layout.float, layout.float))
    const rows = [row(0), row(1), row(2)]
    const linear = rows.flatMap((r) => r.slice(0, 3)) as Mat3
    const offset = rows.map((r) => r[3] as number) as Vec3
    if (isOrthogonal(linear) || qformCode === 0) return { linear, offset }
  }
  if (qformCode > 0) {
    const q = (i: number) => io.float(layout.quatern + i * layout.float, layout.float)
    const [b, c, d] = [q(0), q(1), q(2)]
    const offset: Vec3 = [q(3), q(4), q(5)]
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)))
    const rotation = [
      a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
      2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
      2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b,
    ]
    const qfac = (pixdim[0] ?? 1) < 0 ? -1 : 1
    const scale = [pixdim[1] ?? 1, pixdim[2] ?? 1, (pixdim[3] ?? 1) * qfac]
    const linear = rotation.map((v, i) => v * (scale[i % 3] as number)) as Mat3
    return { linear, offset }
  }
  const [sx, sy, sz] = [pixdim[1] || 1, pixdim[2] || 1, pixdim[3] || 1]
  return { linear: [sx, 0, 0, 0, sy, 0, 0, 0, sz], offset: [0, 0, 0] }
}

function isOrthogonal(m: Mat3): boolean {
  const col = (c: number): Vec3 => [m[c] as number, m[3 + c] as number, m[6 + c] as number]
  const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
  const cols = [col(0), col(1), col(2)]
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) {
      const a = cols[i] as Vec3
      const b = cols[j] as Vec3
      if (Math.abs(dot(a, b)) > 1e-4 * Math.sqrt(dot(a, a) * dot(b, b))) return false
    }
  }
  return true
}

/** nifti_mat44_to_quatern, for a linear part that is rotation x diag(spacing). */
function rotationToQuaternion(linear: Mat3, spacing: Vec3): { quaternion: Vec3; qfac: number } {
  const r = linear.map((v, i) => v / (spacing[i % 3] as number)) as Mat3
  let qfac = 1
  if (mat3Determinant(r) < 0) {
    qfac = -1
    for (let row = 0; row < 3; row++) r[row * 3 + 2] = -(r[row * 3 + 2] as number)
  }
  const m = (row: number, col: number) => r[(row - 1) * 3 + (col - 1)] as number
  let a = m(1, 1) + m(2, 2) + m(3, 3) + 1
  let b: number, c: number, d: number
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a)
    b = (0.25 * (m(3, 2) - m(2, 3))) / a
    c = (0.25 * (m(1, 3) - m(3, 1))) / a
    d = (0.25 * (m(2, 1) - m(1, 2))) / a
  } else {
    const xd = 1 + m(1, 1) - (m(2, 2) + m(3, 3))
    const yd = 1 + m(2, 2) - (m(1, 1) + m(3, 3))
    const zd = 1 + m(3, 3) - (m(1, 1) + m(2, 2))
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd)
      c = (0.25 * (m(1, 2) + m(2, 1))) / b
      d = (0.25 * (m(1, 3) + m(3, 1))) / b
      a = (0.25 * (m(3, 2) - m(2, 3))) / b
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd)
      b = (0.25 * (m(1, 2) + m(2, 1))) / c
      d = (0.25 * (m(2, 3) + m(3, 2))) / c
      a = (0.25 * (m(1, 3) - m(3, 1))) / c
    } else {
      d = 0.5 * Math.sqrt(zd)
      b = (0.25 * (m(1, 3) + m(3, 1))) / d
      c = (0.25 * (m(2, 3) + m(3, 2))) / d
      a = (0.25 * (m(2, 1) - m(1, 2))) / d
    }
    if (a < 0) {
      b = -b
      c = -c
      d = -d
    }
  }
  return { quaternion: [b, c, d], qfac }
}

const EXTENSION_CODES: Record<number, string> = {
  2: 'DICOM',
  4: 'AFNI',
  6: 'comment',
  8: 'XCEDE',
  14: 'MIND',
  32: 'CIFTI',
  40: 'JSON',
}

function readHeaderText(buffer: Uint8Array, layout: Layout, voxOffset: number, littleEndian: boolean): HeaderText[] {
  const found: HeaderText[] = []
  for (const { field, offset, length } of layout.text) {
    const value = printable(buffer.subarray(offset, offset + length))
    if (value !== '') found.push({ field, value })
  }
  // Extensions: after the 4-byte extender, a chain of (esize, ecode, payload) records.
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  const hasExtensions = (buffer[layout.headerSize] ?? 0) !== 0
  let at = layout.headerSize + 4
  let index = 0
  while (hasExtensions && at + 8 <= Math.min(voxOffset, buffer.length)) {
    const esize = view.getInt32(at, littleEndian)
    const ecode = view.getInt32(at + 4, littleEndian)
    if (esize < 8 || at + esize > voxOffset) break
    const kind = EXTENSION_CODES[ecode] ?? `code ${ecode}`
    const text = printable(buffer.subarray(at + 8, at + esize))
    found.push({ field: `extension[${index}] (${kind}, ${esize - 8} bytes)`, value: text.slice(0, 200) })
    at += esize
    index++
  }
  return found
}

function printable(bytes: Uint8Array): string {
  let text = ''
  for (const byte of bytes) {
    if (byte === 0) break
    text += byte >= 32 && byte < 127 ? String.fromCharCode(byte) : ' '
  }
  return text.replace(/\s+/g, ' ').trim()
}

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a] as number
      bytes[a] = bytes[b] as number
      bytes[b] = t
    }
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
