/**
 * Every file unface writes appears under its final name complete or not at all: it is written to
 * a temporary name beside the target and renamed into place, so a crash, a kill or a full disk
 * never leaves a half-written file where the user or a resumed run would take it for finished.
 */
import { link, mkdir, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { UnfaceError } from './errors.js'
import { formatOfPath } from './format.js'

export interface AtomicWriteOptions {
  /** Replace an existing file; without it an existing file is an error and is kept. */
  overwrite?: boolean
}

/** Creates the directory if needed and proves it writable with a real file, before any work is done. */
export async function assertWritableDirectory(directory: string): Promise<void> {
  const probe = join(directory, `.unface-probe-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await mkdir(directory, { recursive: true })
    await writeFile(probe, '')
    await unlink(probe)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new UnfaceError(`cannot write into this directory (${code})`, { file: directory, cause: error })
  }
}

export async function writeFileAtomically(path: string, contents: Uint8Array | string | readonly Uint8Array[], options: AtomicWriteOptions = {}): Promise<void> {
  await commitFile(path, (temporary) => writeFile(temporary, contents), options.overwrite === true)
}

function temporaryName(path: string): string {
  const format = formatOfPath(path)
  // itk-wasm picks its writer by extension, so the temporary name keeps it.
  return join(dirname(path), `.${basename(path)}.unface-${process.pid}-${randomBytes(4).toString('hex')}${format?.extension ?? ''}`)
}

export async function commitFile(path: string, write: (temporary: string) => Promise<void>, overwrite: boolean): Promise<void> {
  const temporary = temporaryName(path)
  try {
    await write(temporary)
    await place(temporary, path, overwrite)
  } catch (error) {
    await rm(temporary, { force: true })
    throw asWriteError(error, path)
  }
}

/** rename() replaces silently, so without overwrite a hard link claims the name atomically or fails. */
export async function place(from: string, to: string, overwrite: boolean): Promise<void> {
  if (overwrite) {
    await rename(from, to)
    return
  }
  try {
    await link(from, to)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UnfaceError('output already exists (use --force to replace it)', { file: to, cause: error })
    }
    throw error
  }
  await unlink(from)
}

export function asWriteError(error: unknown, path: string): UnfaceError {
  if (error instanceof UnfaceError) return error
  const code = (error as NodeJS.ErrnoException).code
  const reason = code === 'ENOSPC' ? 'no space left on device' : code ?? (error as Error).message
  return new UnfaceError(`cannot write output (${reason})`, { file: path, cause: error })
}
