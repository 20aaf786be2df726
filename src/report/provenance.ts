/**
 * What produced an output, precisely enough to reproduce it or to recall it: the tool's version
 * and a hash of its code, and the hash of each model file. A reviewer can then tell two runs of
 * "unface 0.2.0" apart when one of them ran patched code or a retrained model.
 */
import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VERSION } from '../version.js'

export interface ToolIdentity {
  name: 'unface'
  version: string
  /** sha256 over the tool's code (every .js or .ts file of the running build, by relative path). */
  codeSha256: string
}

const CODE_ROOT = fileURLToPath(new URL('..', import.meta.url))
let identity: Promise<ToolIdentity> | undefined

export function toolIdentity(): Promise<ToolIdentity> {
  identity ??= codeHash(CODE_ROOT).then((codeSha256) => ({ name: 'unface', version: VERSION, codeSha256 }))
  return identity
}

export async function fileSha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

async function codeHash(root: string): Promise<string> {
  const files = (await listFiles(root)).filter((f) => /\.(js|ts)$/.test(f) && !/\.(test|d)\.ts$/.test(f)).sort()
  const hash = createHash('sha256')
  for (const file of files) {
    hash.update(relative(root, file)).update('\0').update(await readFile(file)).update('\0')
  }
  return hash.digest('hex')
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? listFiles(join(dir, entry.name)) : Promise.resolve([join(dir, entry.name)]))),
  )
  return nested.flat()
}
