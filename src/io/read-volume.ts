/**
 * The input edge of the pipeline: any supported path in, one Volume out, or an UnfaceError that
 * names the file and says what is wrong with it.
 */
import { open, readFile, stat } from 'node:fs/promises'
import type { Volume } from './volume.js'
import { UnfaceError } from './errors.js'
import { SUPPORTED_EXTENSIONS, formatOfPath } from './format.js'
import { niftiToVolume } from './nifti-file.js'
import { DEFAULT_MAX_VOXELS, assertWithinLimit } from './limits.js'
import { assertScalarVolume, imageToVolume } from './itk-image.js'
import { quietly } from './quiet-itk.js'
import { readDicomSeries } from './dicom-series.js'

export interface ReadOptions {
  /** Refuse volumes with more voxels than this, before allocating them. */
  maxVoxels?: number
  /** For a DICOM directory holding several series: the SeriesInstanceUID to read. */
  seriesUid?: string
}

export async function readVolume(path: string, options: ReadOptions = {}): Promise<Volume> {
  const maxVoxels = options.maxVoxels ?? DEFAULT_MAX_VOXELS
  const info = await statInput(path)
  if (info.isDirectory()) {
    return readDicomSeries(path, { maxVoxels, ...(options.seriesUid === undefined ? {} : { seriesUid: options.seriesUid }) })
  }
  if (info.size === 0) throw new UnfaceError('is empty', { file: path })
  const format = formatOfPath(path)
  if (format === undefined) {
    throw new UnfaceError(await describeUnsupported(path), { file: path })
  }
  if (format.format === 'nifti') {
    return niftiToVolume(await readFile(path), path, maxVoxels)
  }
  const name = format.format === 'nrrd' ? 'NRRD' : 'MetaImage'
  // Loaded on first use: importing itk-wasm costs every command about 0.1 s, and NIfTI never needs it.
  const { readImageNode } = await import('@itk-wasm/image-io')
  const unreadable = (error: unknown) =>
    new UnfaceError(
      `cannot be read as ${name}: the file is corrupt or truncated${format.detached ? ', or its data file is missing' : ''}`,
      { file: path, cause: error },
    )
  const header = await quietly(() => readImageNode(path, { informationOnly: true })).catch((error: unknown) => {
    throw unreadable(error)
  })
  assertScalarVolume(header, path)
  assertWithinLimit(header.size.reduce((a, b) => a * b, 1), maxVoxels, path)
  const image = await quietly(() => readImageNode(path)).catch((error: unknown) => {
    throw unreadable(error)
  })
  return imageToVolume(image, { path, format: format.format, notes: [] })
}

async function statInput(path: string) {
  try {
    return await stat(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const reason =
      code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? String(error)})`
    throw new UnfaceError(reason, { file: path, cause: error })
  }
}

/** A more helpful message than "unsupported" for the files people most often pass by mistake. */
async function describeUnsupported(path: string): Promise<string> {
  const expected = `expected ${SUPPORTED_EXTENSIONS.join(', ')} or a DICOM series directory`
  const head = new Uint8Array(132)
  const handle = await open(path, 'r')
  try {
    await handle.read(head, 0, head.length, 0)
  } finally {
    await handle.close()
  }
  const isDicom = head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d
  if (isDicom) return 'is a single DICOM file: pass the directory that holds the whole series'
  return `is not a supported volume (${expected})`
}
