/**
 * NIfTI files on disk: gzip, the NIfTI (RAS) to Volume (LPS) geometry, and deciding whether the
 * original header can be carried to the output.
 */
import { gunzipSync, constants as zlibConstants } from 'node:zlib'
import { constants as bufferConstants } from 'node:buffer'
import type { Geometry, Mat3, Vec3, Volume } from './volume.js'
import { UnfaceError } from './errors.js'
import { decodeNifti, encodeNifti, expectedNiftiBytes, parseNiftiHeader } from './nifti.js'
import { guessModality } from './modality.js'

const RAS_TO_LPS = [-1, -1, 1] as const

export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x1f && bytes[1] === 0x8b
}

export function niftiToVolume(fileBytes: Uint8Array, file: string, maxVoxels: number): Volume {
  const raw = isGzip(fileBytes) ? gunzip(fileBytes, file, maxVoxels) : fileBytes
  const { header, data } = decodeNifti(raw, file, maxVoxels)
  const geometry = geometryFromAffine(header.affineRas, header.dim.slice(1, 4) as Vec3)
  return {
    ...geometry,
    data,
    pixelType: header.pixelType,
    ...(header.scaling === undefined ? {} : { scaling: header.scaling }),
    modality: guessModality(data, header.scaling),
    headerText: header.headerText,
    // A copy of its own: the bytes may be a view of the whole decompressed file (Buffer's slice
    // shares memory), which would keep it alive and travel with every message the volume is in.
    source: { path: file, format: 'nifti', niftiHeader: Uint8Array.from(header.bytes), notes: [] },
  }
}

/** The .nii file as header and voxel bytes; .nii.gz output gzips them (on libuv's threads, see write-volume.ts). */
export function volumeToNifti(volume: Volume, options: { keepHeaderText: boolean }): [header: Uint8Array, voxels: Uint8Array] {
  const original = volume.source.niftiHeader !== undefined && headerStillFits(volume) ? volume.source.niftiHeader : undefined
  return encodeNifti({
    original,
    keepHeaderText: options.keepHeaderText,
    data: volume.data,
    pixelType: volume.pixelType,
    size: volume.size,
    spacing: volume.spacing,
    affineRas: affineFromGeometry(volume),
    scaling: volume.scaling,
  })
}

/** The original header may be reused only if it still describes these voxels exactly. */
function headerStillFits(volume: Volume): boolean {
  const bytes = volume.source.niftiHeader
  if (bytes === undefined) return false
  const padded = new Uint8Array(bytes.length + 4)
  padded.set(bytes)
  const header = parseNiftiHeader(padded, volume.source.path)
  const geometry = geometryFromAffine(header.affineRas, header.dim.slice(1, 4) as Vec3)
  const scalingMatches =
    (header.scaling?.slope ?? 1) === (volume.scaling?.slope ?? 1) &&
    (header.scaling?.intercept ?? 0) === (volume.scaling?.intercept ?? 0)
  return header.pixelType === volume.pixelType && scalingMatches && sameGeometry(geometry, volume)
}

export function sameGeometry(a: Geometry, b: Geometry, tolerance = 1e-6): boolean {
  const close = (x: readonly number[], y: readonly number[]) =>
    x.length === y.length && x.every((v, i) => Math.abs(v - (y[i] as number)) <= tolerance * Math.max(1, Math.abs(v)))
  return (
    a.size.every((n, i) => n === b.size[i]) &&
    close(a.spacing, b.spacing) &&
    close(a.origin, b.origin) &&
    close(a.direction, b.direction)
  )
}

export function geometryFromAffine(affine: { linear: Mat3; offset: Vec3 }, size: Vec3): Geometry {
  const lps = affine.linear.map((v, i) => v * (RAS_TO_LPS[Math.floor(i / 3)] as number))
  const spacing = [0, 1, 2].map((c) => Math.hypot(lps[c] as number, lps[3 + c] as number, lps[6 + c] as number)) as Vec3
  const direction = lps.map((v, i) => v / (spacing[i % 3] as number)) as Mat3
  const origin = affine.offset.map((o, i) => o * (RAS_TO_LPS[i] as number)) as Vec3
  return { size: [...size], spacing, origin, direction }
}

export function affineFromGeometry(geometry: Geometry): { linear: Mat3; offset: Vec3 } {
  const linear = geometry.direction.map(
    (v, i) => v * (geometry.spacing[i % 3] as number) * (RAS_TO_LPS[Math.floor(i / 3)] as number),
  ) as Mat3
  const offset = geometry.origin.map((o, i) => o * (RAS_TO_LPS[i] as number)) as Vec3
  return { linear, offset }
}

/**
 * The header is inflated first, on its own, so that a volume over the size limit is refused by
 * its dimensions before anything large is allocated; the full inflate is then bounded by what
 * the header announces, which also stops gzip bombs.
 */
function gunzip(bytes: Uint8Array, file: string, maxVoxels: number): Uint8Array {
  let expected: number
  try {
    const start = gunzipSync(bytes.subarray(0, 65536), { finishFlush: zlibConstants.Z_SYNC_FLUSH })
    expected = expectedNiftiBytes(start, file, maxVoxels)
  } catch (error) {
    if (error instanceof UnfaceError) throw error
    throw new UnfaceError(`corrupt gzip data (${(error as Error).message})`, { file, cause: error })
  }
  try {
    // One output chunk of the announced size: zlib's default 16 KiB chunks are joined at the end
    // by a second full-size copy, which on a 256^3 scan costs more than the inflate itself.
    return gunzipSync(bytes, { chunkSize: expected + 1, maxOutputLength: Math.min(expected + (1 << 20), bufferConstants.MAX_LENGTH) })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'Z_BUF_ERROR') throw new UnfaceError('truncated gzip data (the file ends early)', { file, cause: error })
    if (error instanceof RangeError || code === 'ERR_BUFFER_TOO_LARGE') {
      throw new UnfaceError(`decompresses to more data than its header announces (${expected} bytes)`, { file, cause: error })
    }
    throw new UnfaceError(`corrupt gzip data (${(error as Error).message})`, { file, cause: error })
  }
}
