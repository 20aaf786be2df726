/**
 * The output edge of the pipeline. Every write goes to a temporary file beside the target and is
 * renamed into place, so a crash or a full disk never leaves a half-written volume under the
 * name the user asked for.
 */
import { mkdtemp, readdir, rm, stat, unlink, writeFile, access, constants as fsConstants } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createGzip } from 'node:zlib'
import type { Volume } from './volume.js'
import { realIntensities } from './volume.js'
import { UnfaceError } from './errors.js'
import { SUPPORTED_EXTENSIONS, formatOfPath, type FileFormat } from './format.js'
import { volumeToNifti } from './nifti-file.js'
import { volumeToImage } from './itk-image.js'
import { asWriteError, commitFile, place, writeFileAtomically } from './atomic-file.js'
import { quietly } from './quiet-itk.js'

export interface WriteOptions {
  /** Keep NIfTI descrip/aux_file/intent_name/db_name and extensions, and NRRD/MetaImage key-values. */
  keepHeaderText?: boolean
  /** Replace an existing file at the path. */
  overwrite?: boolean
}

export interface WriteResult {
  path: string
  /** What had to change to fit the format (e.g. scaled NIfTI written as float32 to NRRD). */
  notes: string[]
}

/** Fails early, before any processing, if the volume could not be written to `path`. */
export async function assertWritable(path: string, options: { overwrite?: boolean } = {}): Promise<FileFormat> {
  // A directory first: its name has no extension, and "unsupported output format" would not say what is wrong.
  const existing = await stat(path).catch(() => undefined)
  if (existing?.isDirectory()) throw new UnfaceError('output is a directory (give a file name, such as OUT.nii.gz)', { file: path })
  const format = formatOfPath(path)
  if (format === undefined) {
    throw new UnfaceError(`unsupported output format (use one of ${SUPPORTED_EXTENSIONS.join(', ')})`, { file: path })
  }
  if (existing !== undefined && options.overwrite !== true) {
    throw new UnfaceError('output already exists (use --force to replace it)', { file: path })
  }
  const directory = dirname(path)
  const dirInfo = await stat(directory).catch(() => undefined)
  if (dirInfo === undefined) throw new UnfaceError(`cannot write output: directory ${directory} does not exist`, { file: path })
  if (!dirInfo.isDirectory()) throw new UnfaceError(`cannot write output: ${directory} is not a directory`, { file: path })
  // access() says yes to root on read-only mounts, so probe with a real file.
  const probe = join(directory, `.unface-probe-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await access(directory, fsConstants.W_OK)
    await writeFile(probe, '')
    await unlink(probe)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new UnfaceError(`cannot write output: directory ${directory} is not writable (${code})`, { file: path, cause: error })
  }
  return format
}

export async function writeVolume(volume: Volume, path: string, options: WriteOptions = {}): Promise<WriteResult> {
  await assertWritable(path, options)
  const encoded = await encodeVolume(volume, path, options)
  await encoded.writeTo(path, options)
  return { path, notes: encoded.notes }
}

/**
 * A volume made ready to be written in the format `path` names. For NIfTI that is the finished
 * bytes, gzipped on libuv's threads, so that the encoding of an output can go on while other
 * work (verification) runs; NRRD and MetaImage are encoded by itk-wasm as they are written.
 */
export interface EncodedVolume {
  notes: string[]
  writeTo(path: string, options: { overwrite?: boolean }): Promise<void>
}

export async function encodeVolume(volume: Volume, path: string, options: { keepHeaderText?: boolean } = {}): Promise<EncodedVolume> {
  const format = formatOfPath(path)
  if (format === undefined) throw new UnfaceError(`unsupported output format (use one of ${SUPPORTED_EXTENSIONS.join(', ')})`, { file: path })
  const notes: string[] = []
  if (format.format === 'nifti') {
    const parts = volumeToNifti(volume, { keepHeaderText: options.keepHeaderText === true })
    const chunks = format.extension === '.nii.gz' ? await gzipParts(parts) : parts
    return { notes, writeTo: (target, { overwrite }) => writeFileAtomically(target, chunks, { overwrite: overwrite === true }) }
  }
  let toWrite = volume
  if (volume.scaling !== undefined) {
    // NRRD and MetaImage have no scl_slope: keep the real intensities rather than the raw codes.
    toWrite = { ...volume, data: realIntensities(volume), pixelType: 'float32' }
    delete toWrite.scaling
    notes.push(`stored ${volume.pixelType} with slope ${volume.scaling.slope} and intercept ${volume.scaling.intercept}, written as float32 intensities because ${format.extension} has no scaling fields`)
  }
  // DICOM header text (names, IDs, dates) is never carried into another format, even when asked.
  const carryText = options.keepHeaderText === true && volume.source.format !== 'dicom'
  const metadata = new Map<string, unknown>(carryText ? volume.headerText.map((t) => [t.field, t.value]) : [])
  const image = await volumeToImage(toWrite, metadata)
  // Loaded on first use, as in read-volume.ts.
  const { writeImageNode } = await import('@itk-wasm/image-io')
  const writeWithItk = (target: string) =>
    quietly(() => writeImageNode(image, target, { useCompression: true })).catch((error: unknown) => {
      throw new UnfaceError(`could not write ${format.extension}`, { file: path, cause: error })
    })
  return {
    notes,
    writeTo: (target, { overwrite }) => (format.detached ? commitDetached(target, writeWithItk, overwrite === true) : commitFile(target, writeWithItk, overwrite === true)),
  }
}

/** Larger volumes are compressed in chunks of this size: memory for the output stays bounded. */
const MAX_GZIP_CHUNK = 128 << 20

/**
 * One gzip member over the parts, in order, as compressed chunks: the same bytes as gzipping the
 * joined file, without joining it. Level 1, as nibabel writes: on head scans about 2% larger than
 * level 6, and a third quicker.
 *
 * The output buffer is as large as the input (up to MAX_GZIP_CHUNK): zlib then compresses it in
 * one go on libuv's thread. With 1 MB chunks each next one waited for this thread's event loop,
 * so the compression stood still while the verify stage rendered here: 17 MB of voxels took
 * 691 ms with the thread busy for 600 ms, against 602 ms in one chunk (157 and 134 ms idle).
 */
function gzipParts(parts: Uint8Array[]): Promise<Buffer[]> {
  const total = parts.reduce((sum, part) => sum + part.length, 0)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const gzip = createGzip({ level: 1, chunkSize: Math.min(MAX_GZIP_CHUNK, Math.max(1 << 16, total + (1 << 16))) })
    gzip.on('data', (chunk: Buffer) => chunks.push(chunk))
    gzip.on('end', () => resolve(chunks))
    gzip.on('error', reject)
    for (const part of parts) gzip.write(part)
    gzip.end()
  })
}

/** .nhdr/.mhd name their data file inside the header, so both are written under their final names in a private folder, then moved. */
async function commitDetached(path: string, write: (target: string) => Promise<void>, overwrite: boolean): Promise<void> {
  const folder = await mkdtemp(join(dirname(path), `.${basename(path)}.unface-`))
  try {
    const staged = join(folder, basename(path))
    await write(staged)
    const dataFiles = (await readdir(folder)).filter((name) => name !== basename(path))
    for (const name of dataFiles) await place(join(folder, name), join(dirname(path), name), overwrite)
    await place(staged, path, overwrite)
  } catch (error) {
    throw asWriteError(error, path)
  } finally {
    await rm(folder, { recursive: true, force: true })
  }
}
