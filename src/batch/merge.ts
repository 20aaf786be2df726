/**
 * `unface merge-manifests DIR...`: the shard manifests of a sharded run (in one OUT_DIR or in
 * several) combined into one unface-manifest.jsonl and one unface-report.html. Every shard of
 * the split must be there and no input may appear twice, so that the merged manifest is the one
 * an unsharded run would have written (apart from the timings).
 */
import { resolve } from 'node:path'
import { UnfaceError } from '../io/errors.js'
import { writeDatasetReport, type ReportRow } from './dataset-report.js'
import { countVerdicts, latestRows, manifestPath, manifestsIn, readManifest, writeManifest, type VerdictCounts } from './manifest.js'
import { byCodeUnit } from './discover.js'
import { reportPath } from './run-dataset.js'

export interface MergeResult {
  manifest: string
  report: string
  counts: VerdictCounts
  shards: string[]
}

export async function mergeManifests(directories: string[], outDir: string = directories[0] as string): Promise<MergeResult> {
  if (directories.length === 0) throw new UnfaceError('merge-manifests needs at least one folder')
  const out = resolve(outDir)
  const found: Array<{ path: string; root: string; shard?: { index: number; count: number } }> = []
  for (const directory of directories) {
    const root = resolve(directory)
    const manifests = await manifestsIn(root).catch((error: NodeJS.ErrnoException) => {
      throw new UnfaceError(`cannot be read (${error.code ?? error.message})`, { file: root })
    })
    if (manifests.length === 0) throw new UnfaceError('holds no unface manifest', { file: root })
    found.push(...manifests.map((m) => ({ ...m, root })))
  }
  const sharded = found.filter((f) => f.shard !== undefined)
  if (sharded.length > 0) {
    if (sharded.length !== found.length) throw new UnfaceError('mixes shard manifests with an unsharded one', { file: found[0]?.root ?? out })
    const counts = new Set(sharded.map((f) => f.shard?.count))
    if (counts.size > 1) throw new UnfaceError(`shard manifests of different splits (${[...counts].join(', ')} shards)`, { file: out })
    const count = [...counts][0] as number
    const seen = new Map<number, string>()
    for (const f of sharded) {
      const index = f.shard?.index as number
      if (seen.has(index)) throw new UnfaceError(`shard ${index} of ${count} appears twice (${seen.get(index)} and ${f.path})`, { file: f.path })
      seen.set(index, f.path)
    }
    const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !seen.has(i))
    if (missing.length > 0) throw new UnfaceError(`missing shard(s) ${missing.join(', ')} of ${count}`, { file: out })
  }

  const rows: ReportRow[] = []
  const owner = new Map<string, string>()
  for (const f of found) {
    const { rows: fileRows, damagedLines } = await readManifest(f.path)
    if (damagedLines > 0) throw new UnfaceError(`has ${damagedLines} damaged line(s): was its run killed? run that shard again first`, { file: f.path })
    for (const row of latestRows(fileRows)) {
      const other = owner.get(row.input)
      if (other !== undefined) throw new UnfaceError(`${row.input} is in two manifests (${other} and ${f.path})`, { file: f.path })
      owner.set(row.input, f.path)
      rows.push({ row, root: f.root })
    }
  }
  rows.sort((a, b) => byCodeUnit(a.row.input, b.row.input))
  const manifest = manifestPath(out, undefined)
  const report = reportPath(out, undefined)
  await writeManifest(manifest, rows.map((r) => r.row))
  await writeDatasetReport(report, rows, `unface: merged from ${found.length} manifest(s)`)
  return { manifest, report, counts: countVerdicts(rows.map((r) => r.row)), shards: found.map((f) => f.path) }
}
