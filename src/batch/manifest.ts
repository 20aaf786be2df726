/**
 * OUT_DIR/unface-manifest.jsonl: one JSON row per input image, the record a data custodian
 * keeps of what was released and why. Rows are appended as files finish (so a killed run keeps
 * what it finished), and the file is rewritten sorted by input path at the end of a run, so that
 * two runs over the same data give the same manifest apart from the timings.
 */
import { readFile, readdir } from 'node:fs/promises'
import { appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomically } from '../io/atomic-file.js'
import type { Verdict } from '../report/deface-report.js'
import type { DefaceMode } from '../deface/deface-volume.js'
import { byCodeUnit } from './discover.js'
import { shardSuffix, type Shard } from './shard.js'

export type RowVerdict = Verdict | 'ERROR'

export interface RowSettings {
  mode: DefaceMode
  ears: boolean
  brainMarginMm: number
  verify: boolean
  /** The --mask-from suffix, or null. */
  maskFrom: string | null
}

export interface ManifestRow {
  /** Input path relative to the dataset root. */
  input: string
  /** null when the input could not be read. */
  inputSha256: string | null
  inputBytes: number | null
  /** Output path relative to OUT_DIR; null when nothing was released. */
  output: string | null
  outputSha256: string | null
  outputBytes: number | null
  verdict: RowVerdict
  released: boolean
  /** Why the verdict is what it is (DefaceReport.reasons), or the error. */
  reasons: string[]
  /** For ERROR rows: the one-line error. */
  error?: string
  /** Voxel counts (DefaceReport.voxels): brainChanged is the number of brain voxels changed, which must be 0. */
  voxels: { face: number; ears: number; brain: number; changed: number; brainChanged: number } | null
  /**
   * Where the labels came from: `self` (this image was segmented), or `mask-from` (the labels of
   * `from`, an image on the same voxel grid). `note` says why a --mask-from image used its own.
   */
  mask: { source: 'self' | 'mask-from'; from?: string; note?: string }
  /** The sidecar written beside the output, and the identifying keys removed from it. */
  sidecar: { output: string; removedFields: string[] } | null
  /** The per-image report files, relative to OUT_DIR. */
  report: { json: string; png: string; html: string; thumbnail?: string } | null
  settings: RowSettings
  tool: { name: 'unface'; version: string; codeSha256: string }
  models: { segmentationSha256: string | null; faceCheckSha256: string | null }
  /** Stage timings in ms and `total`; the only fields that differ between two runs over the same data. */
  timingsMs: Record<string, number>
}

/** Fields that legitimately differ between two runs over the same data; compare rows without them. */
export const TIMING_FIELDS = ['timingsMs'] as const

export function withoutTimings(row: ManifestRow): Omit<ManifestRow, 'timingsMs'> {
  const { timingsMs, ...rest } = row
  void timingsMs
  return rest
}

export function manifestName(shard: Shard | undefined): string {
  return `unface-manifest${shardSuffix(shard)}.jsonl`
}

export function manifestPath(outDir: string, shard: Shard | undefined): string {
  return join(outDir, manifestName(shard))
}

export interface ManifestContents {
  rows: ManifestRow[]
  /** Lines that were not a complete row: a run killed while appending leaves at most one. */
  damagedLines: number
}

export async function readManifest(path: string): Promise<ManifestContents> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return ''
    throw error
  })
  const rows: ManifestRow[] = []
  let damagedLines = 0
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      const row = JSON.parse(line) as ManifestRow
      if (typeof row.input !== 'string' || typeof row.verdict !== 'string') throw new Error('not a row')
      rows.push(row)
    } catch {
      damagedLines++
    }
  }
  return { rows, damagedLines }
}

/** One write of one line: a kill can cut at most this line short, and reading drops such a line. */
export async function appendRow(path: string, row: ManifestRow): Promise<void> {
  await appendFile(path, `${JSON.stringify(row)}\n`)
}

/** Latest row per input, sorted by input path. */
export function latestRows(rows: Iterable<ManifestRow>): ManifestRow[] {
  const byInput = new Map<string, ManifestRow>()
  for (const row of rows) byInput.set(row.input, row)
  return [...byInput.values()].sort((a, b) => byCodeUnit(a.input, b.input))
}

export async function writeManifest(path: string, rows: Iterable<ManifestRow>): Promise<void> {
  const sorted = latestRows(rows)
  await writeFileAtomically(path, sorted.map((r) => `${JSON.stringify(r)}\n`).join(''), { overwrite: true })
}

/** The manifests a directory holds: shard manifests if any, else the unsharded one. */
export async function manifestsIn(directory: string): Promise<Array<{ path: string; shard?: Shard }>> {
  const names = await readdir(directory)
  const shards = names
    .map((name) => ({ name, match: /^unface-manifest\.shard-(\d+)-of-(\d+)\.jsonl$/.exec(name) }))
    .filter((n) => n.match !== null)
    .map((n) => ({ path: join(directory, n.name), shard: { index: Number(n.match?.[1]), count: Number(n.match?.[2]) } }))
    .sort((a, b) => a.shard.index - b.shard.index)
  if (shards.length > 0) return shards
  return names.includes('unface-manifest.jsonl') ? [{ path: join(directory, 'unface-manifest.jsonl') }] : []
}

export interface VerdictCounts {
  total: number
  passed: number
  noFace: number
  unverified: number
  failed: number
  errors: number
}

export function countVerdicts(rows: Iterable<ManifestRow>): VerdictCounts {
  const counts: VerdictCounts = { total: 0, passed: 0, noFace: 0, unverified: 0, failed: 0, errors: 0 }
  for (const row of rows) {
    counts.total++
    if (row.verdict === 'PASS') counts.passed++
    else if (row.verdict === 'NO-FACE') counts.noFace++
    else if (row.verdict === 'UNVERIFIED') counts.unverified++
    else if (row.verdict === 'FAIL') counts.failed++
    else counts.errors++
  }
  return counts
}
