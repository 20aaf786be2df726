/**
 * The output edge of the pipeline. Every write goes to a temporary file beside the target and is
 * renamed into place, so a crash or a full disk never leaves a half-written volume under the
 * name the user asked for.
 */
import { mkdtemp, readdir, rm, stat, unlink, writeFile, access, constants as fsConstants } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { writeImageNode } from '@itk-wasm/image-io'
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
  const format = formatOfPath(path)
  if (format === undefined) {
    throw new UnfaceError(`unsupported output format (use one of ${SUPPORTED_EXTENSIONS.join(', ')})`, { file: path })
  }
  const existing = await stat(path).catch(() => undefined)
  if (existing?.isDirectory()) throw new UnfaceError('output is a directory', { file: path })
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
  const format = await assertWritable(path, options)
  const notes: string[] = []
  if (format.format === 'nifti') {
    const bytes = volumeToNifti(volume, { keepHeaderText: options.keepHeaderText === true, compress: format.extension === '.nii.gz' })
    await writeFileAtomically(path, bytes, { overwrite: options.overwrite === true })
    return { path, notes }
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
  const image = volumeToImage(toWrite, metadata)
  const writeWithItk = (target: string) =>
    quietly(() => writeImageNode(image, target, { useCompression: true })).catch((error: unknown) => {
      throw new UnfaceError(`could not write ${format.extension}`, { file: path, cause: error })
    })
  if (format.detached) await commitDetached(path, writeWithItk, options.overwrite === true)
  else await commitFile(path, writeWithItk, options.overwrite === true)
  return { path, notes }
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
