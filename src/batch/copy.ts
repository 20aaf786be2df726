/**
 * The files of a dataset that are not defaced: copied byte for byte (atomically, keeping the
 * modification time, so that a rerun can tell a finished copy by size and time without reading
 * it), except JSON files, which are scrubbed of identifying fields when they hold any, and
 * dataset_description.json, which gets a GeneratedBy entry.
 */
import { copyFile, mkdir, readFile, rm, stat, utimes } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { commitFile, writeFileAtomically } from '../io/atomic-file.js'
import { VERSION } from '../version.js'
import { scrubSidecar, withGeneratedBy } from './sidecar.js'

export type CopyOutcome = 'copied' | 'unchanged' | 'scrubbed'

export async function copyUnchanged(inRoot: string, outRoot: string, rel: string): Promise<CopyOutcome> {
  const from = join(inRoot, rel)
  const to = join(outRoot, rel)
  const source = await stat(from)
  const existing = await stat(to).catch(() => undefined)
  if (existing !== undefined && existing.size === source.size && Math.abs(existing.mtimeMs - source.mtimeMs) < 2) return 'unchanged'
  await mkdir(dirname(to), { recursive: true })
  await commitFile(
    to,
    async (temporary) => {
      await copyFile(from, temporary)
      await utimes(temporary, source.atimeMs / 1000, source.mtimeMs / 1000)
    },
    true,
  )
  return 'copied'
}

/** A JSON file that no defaced image owns: scrubbed if it holds identifying fields, else copied unchanged. */
export async function copyJson(inRoot: string, outRoot: string, rel: string): Promise<CopyOutcome> {
  const text = await readFile(join(inRoot, rel), 'utf8')
  let scrubbed
  try {
    scrubbed = scrubSidecar(text)
  } catch (error) {
    // It may hold names we cannot find: never copy it as it is.
    await rm(join(outRoot, rel), { force: true })
    throw new Error(`is not valid JSON, so it cannot be scrubbed and was not copied (${(error as Error).message})`)
  }
  if (!scrubbed.changed) return copyUnchanged(inRoot, outRoot, rel)
  await mkdir(dirname(join(outRoot, rel)), { recursive: true })
  await writeFileAtomically(join(outRoot, rel), scrubbed.text, { overwrite: true })
  return 'scrubbed'
}

export async function writeDatasetDescription(
  inRoot: string,
  outRoot: string,
  rel: string,
  settings: { mode: string; verify: boolean; maskFrom: string | null },
): Promise<void> {
  const text = await readFile(join(inRoot, rel), 'utf8')
  const description =
    `Faces removed by unface (mode ${settings.mode}${settings.maskFrom === null ? '' : `, --mask-from ${settings.maskFrom}`})` +
    (settings.verify
      ? '; each defaced image was rendered and checked by a face detector, and only images with verdict PASS or NO-FACE were released. See unface-manifest.jsonl.'
      : '; verification was switched off (--no-verify). See unface-manifest.jsonl.')
  let updated: string
  try {
    updated = withGeneratedBy(text, { Name: 'unface', Version: VERSION, Description: description })
  } catch (error) {
    throw new Error(`cannot add GeneratedBy (${(error as Error).message})`)
  }
  await writeFileAtomically(join(outRoot, rel), updated, { overwrite: true })
}

/** derivatives/unface/dataset_description.json: the per-image reports form a BIDS derivative dataset. */
export async function writeDerivativeDescription(outRoot: string, rel: string): Promise<void> {
  const description = {
    Name: 'unface defacing reports',
    BIDSVersion: '1.9.0',
    DatasetType: 'derivative',
    GeneratedBy: [{ Name: 'unface', Version: VERSION, Description: 'Per-image defacing reports: renders before and after, verdict, removed region.' }],
  }
  await mkdir(dirname(join(outRoot, rel)), { recursive: true })
  await writeFileAtomically(join(outRoot, rel), `${JSON.stringify(description, null, 2)}\n`, { overwrite: true })
}
