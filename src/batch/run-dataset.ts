/**
 * `unface dataset IN_DIR OUT_DIR`: a whole dataset defaced into a mirrored copy. The parent
 * process plans the work, copies the files that are not defaced, hands units of work to a pool
 * of worker processes, and records each image in the manifest as it finishes; it never holds a
 * volume. A file counts as done only once its outputs are in place and its row is in the
 * manifest, so a run killed at any moment and started again redoes only unfinished files.
 */
import { appendFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join, posix, relative, resolve, sep } from 'node:path'
import { ExitCode, UnfaceError } from '../io/errors.js'
import { toolIdentity } from '../report/provenance.js'
import { DEFAULT_DEFACE_SETTINGS, type DefaceMode } from '../deface/deface-volume.js'
import { holdsVisitDates, isVolumePath, sidecarPathOf } from './bids.js'
import { copyJson, copyUnchanged, writeDatasetDescription, writeDerivativeDescription } from './copy.js'
import { writeDatasetReport } from './dataset-report.js'
import { discoverDataset, isUnfaceTemporary, type Layout, type WorkUnit } from './discover.js'
import { globToRegExp } from './glob.js'
import {
  appendRow,
  countVerdicts,
  latestRows,
  manifestPath,
  readManifest,
  writeManifest,
  type ManifestRow,
  type RowSettings,
} from './manifest.js'
import { defaultJobs, runPool } from './pool.js'
import { REPORT_ROOT, reportPathsOf, thumbnailPathOf } from './process-unit.js'
import type { DatasetEvent, DatasetSummary } from './progress.js'
import type { ModelIdentity, RunContext, UnitJob } from './protocol.js'
import { inShard, shardSuffix, type Shard } from './shard.js'
import { acquireLock } from './lock.js'

export interface DatasetOptions {
  input: string
  output: string
  layout?: Layout | 'auto'
  /** Extra images to deface (globs relative to IN_DIR), beyond BIDS anat/. */
  include?: string[]
  /** Files to leave out entirely: neither defaced nor copied. */
  exclude?: string[]
  participants?: string[]
  /** BIDS suffix whose label map the other images of its folder reuse when on the same grid. */
  maskFrom?: string
  /** Worker processes (default: defaultJobs(), one per core as far as the memory allows). */
  jobs?: number
  shard?: Shard
  mode?: DefaceMode
  ears?: boolean
  brainMarginMm?: number
  verify?: boolean
  /** Redo images recorded as FAIL or ERROR. */
  retryFailed?: boolean
  /** Redo every image. */
  force?: boolean
  maxVoxels?: number
  onEvent?: (event: DatasetEvent) => void
  onWorkerOutput?: (text: string) => void
}

export const REPORT_NAME = 'unface-report'

export function reportPath(outDir: string, shard: Shard | undefined): string {
  return join(outDir, `${REPORT_NAME}${shardSuffix(shard)}.html`)
}

export function logPath(outDir: string, shard: Shard | undefined): string {
  return join(outDir, REPORT_ROOT, 'logs', `unface-runs${shardSuffix(shard)}.jsonl`)
}

export async function runDataset(options: DatasetOptions): Promise<DatasetSummary> {
  const started = performance.now()
  const inRoot = resolve(options.input)
  const outRoot = resolve(options.output)
  await checkFolders(inRoot, outRoot)
  const settings: RowSettings = {
    mode: options.mode ?? DEFAULT_DEFACE_SETTINGS.mode,
    ears: options.ears ?? DEFAULT_DEFACE_SETTINGS.ears,
    brainMarginMm: options.brainMarginMm ?? DEFAULT_DEFACE_SETTINGS.brainMarginMm,
    verify: options.verify !== false,
    maskFrom: options.maskFrom ?? null,
  }
  const shard = options.shard
  const emit = (event: DatasetEvent) => options.onEvent?.(event)

  const plan = await discoverDataset(inRoot, {
    layout: options.layout ?? 'auto',
    include: (options.include ?? []).map(globToRegExp),
    exclude: (options.exclude ?? []).map(globToRegExp),
    participants: options.participants ?? [],
    ...(options.maskFrom === undefined ? {} : { maskFrom: options.maskFrom }),
  })
  const units = plan.units.filter((u) => inShard(u.key, shard))
  const copies = plan.copies.filter((f) => inShard(f, shard))
  const refused = plan.refused.filter((r) => inShard(r.input, shard))
  const description = plan.datasetDescription !== undefined && inShard(plan.datasetDescription, shard) ? plan.datasetDescription : undefined
  const derivativeRel = `${REPORT_ROOT}/dataset_description.json`
  const derivativeDescription = plan.layout === 'bids' && !plan.copies.includes(derivativeRel) && inShard(derivativeRel, shard) ? derivativeRel : undefined
  const manifest = manifestPath(outRoot, shard)
  const report = reportPath(outRoot, shard)
  const log = logPath(outRoot, shard)

  await mkdir(outRoot, { recursive: true })
  const lock = await acquireLock(outRoot, shard)
  try {
    return await runLocked()
  } finally {
    await lock.release()
  }

  async function runLocked(): Promise<DatasetSummary> {
    const notes: string[] = lock.note === undefined ? [] : [lock.note]
    const sharedFolder = shard !== undefined && shard.count > 1
    const extras = derivativeDescription === undefined ? [] : [join(outRoot, derivativeDescription)]
    await removeStaleTemporaries(outRoot, sharedFolder ? targetsOf(outRoot, units, copies, description, [manifest, report, log, ...extras]) : undefined)
    await mkdir(join(outRoot, REPORT_ROOT, 'logs'), { recursive: true })

    const previous = new Map<string, ManifestRow>()
    const earlier = await readManifest(manifest)
    for (const row of earlier.rows) previous.set(row.input, row)
    if (earlier.damagedLines > 0) notes.push(`the manifest had ${earlier.damagedLines} incomplete line(s) from a run that was killed; those images are done again`)
    const dated = await tablesWithVisitDates(inRoot, copies)
    if (dated.length > 0) {
      const examples = `${dated.slice(0, 3).join(', ')}${dated.length > 3 ? ', ...' : ''}`
      notes.push(`${dated.length} scans/sessions table(s) are copied unchanged with the dates of the visits in acq_time (${examples}); shift or remove those dates before sharing`)
    }

    // What is done already: a row with these settings whose input has not changed size and whose output is in place.
    const selection = new Set<string>([...units.flatMap((u) => u.images.map((i) => i.input)), ...refused.map((r) => r.input)])
    const rows = new Map<string, ManifestRow>()
    const jobs: UnitJob[] = []
    let doneBefore = 0
    for (const unit of units) {
      const todo: string[] = []
      for (const image of unit.images) {
        const row = previous.get(image.input)
        if (row !== undefined && (await isDone(row, inRoot, outRoot, settings, options))) {
          rows.set(image.input, row)
          doneBefore++
        } else {
          todo.push(image.input)
        }
      }
      if (todo.length === 0) continue
      const reference = unit.reference === undefined || todo.includes(unit.reference) ? undefined : rows.get(unit.reference)
      jobs.push({ id: jobs.length, unit, todo, ...(reference === undefined ? {} : { referenceReleased: reference.released }) })
    }
    const imageCount = units.reduce((n, u) => n + u.images.length, 0)
    const jobCount = Math.max(1, Math.min(options.jobs ?? defaultJobs(), jobs.length))
    emit({
      type: 'plan',
      layout: plan.layout,
      images: imageCount + refused.length,
      done: doneBefore,
      todo: jobs.reduce((n, j) => n + j.todo.length, 0),
      copies: copies.length + (description === undefined ? 0 : 1),
      copiedVolumes: copies.filter(isVolumePath).length,
      copiedVolumeExamples: copies.filter(isVolumePath).slice(0, 10),
      refused: refused.length,
      jobs: jobs.length === 0 ? 0 : jobCount,
      shard: shard === undefined ? null : `${shard.index}/${shard.count}`,
      notes,
    })

    const tool = await toolIdentity()
    await appendFile(log, `${JSON.stringify({ event: 'run-start', time: new Date().toISOString(), pid: process.pid, tool, settings, shard: shard ?? null, todo: jobs.reduce((n, j) => n + j.todo.length, 0), doneBefore })}\n`)
    let processed = 0
    let records: Promise<void> = Promise.resolve()
    const record = (row: ManifestRow, counted: boolean) => {
      rows.set(row.input, row)
      // The manifest row is the commit point; the log line after it is for audits and tests.
      records = records.then(async () => {
        await appendRow(manifest, row)
        await appendFile(log, `${JSON.stringify({ event: 'done', input: row.input, verdict: row.verdict, pid: process.pid })}\n`)
      })
      if (counted) {
        processed++
        emit({ type: 'file', row })
      }
      return records
    }

    for (const refusal of refused) {
      const row = errorRow(refusal.input, refusal.error, settings, tool, undefined)
      rows.set(row.input, row)
      if (!sameExceptTimings(previous.get(row.input), row)) await record(row, false)
    }

    // Copies run beside the workers: they are I/O, the workers are CPU.
    const copyErrors: DatasetSummary['copyErrors'] = []
    let copied = 0
    let scrubbed = 0
    const copying = (async () => {
      for (const rel of copies) {
        try {
          const outcome = rel.toLowerCase().endsWith('.json') ? await copyJson(inRoot, outRoot, rel) : await copyUnchanged(inRoot, outRoot, rel)
          if (outcome === 'copied') copied++
          if (outcome === 'scrubbed') scrubbed++
        } catch (error) {
          copyErrors.push({ path: rel, error: (error as Error).message.split('\n')[0] ?? '' })
        }
      }
      if (description !== undefined) {
        try {
          await writeDatasetDescription(inRoot, outRoot, description, settings)
        } catch (error) {
          copyErrors.push({ path: description, error: (error as Error).message.split('\n')[0] ?? '' })
        }
      }
      if (derivativeDescription !== undefined) await writeDerivativeDescription(outRoot, derivativeDescription)
    })()

    if (jobs.length > 0) {
      const queue = [...jobs]
      const context: RunContext = {
        inRoot,
        outRoot,
        layout: plan.layout,
        settings,
        // Each worker's network gets its share of the cores: more threads than cores only contend.
        threadsPerWorker: Math.max(1, Math.floor(availableParallelism() / jobCount)),
        ...(options.maxVoxels === undefined ? {} : { maxVoxels: options.maxVoxels }),
      }
      await runPool(jobCount, context, {
        nextJob: async () => queue.shift(),
        onStart: (input) => emit({ type: 'start', input }),
        onRow: (row) => record(row, true),
        onWorkerDied: async (_job, unfinished, reason, models) => {
          for (const input of unfinished) await record(errorRow(input, reason, settings, tool, models), true)
        },
        ...(options.onWorkerOutput === undefined ? {} : { onOutput: options.onWorkerOutput }),
      })
    }
    await copying
    await records

    // The final manifest: this run's selection, plus rows of inputs outside it that still exist
    // (other --participant-label subsets), sorted. A shard keeps only its own selection, so that
    // an image whose unit moved to another shard is never in two shard manifests.
    const kept: ManifestRow[] = []
    for (const row of previous.values()) {
      if (selection.has(row.input) || sharedFolder) continue
      if (await stat(join(inRoot, row.input)).then(() => true, () => false)) kept.push(row)
    }
    const finalRows = latestRows([...kept, ...rows.values()])
    await writeManifest(manifest, finalRows)
    await writeDatasetReport(
      report,
      finalRows.map((row) => ({ row, root: outRoot })),
      `unface: ${posix.basename(inRoot)}${shard === undefined ? '' : ` (shard ${shard.index} of ${shard.count})`}`,
    )

    const selectionRows = finalRows.filter((r) => selection.has(r.input))
    const counts = countVerdicts(selectionRows)
    const exitCode = counts.errors > 0 || copyErrors.length > 0 ? ExitCode.error : counts.failed > 0 ? ExitCode.verificationFailed : ExitCode.ok
    await appendFile(log, `${JSON.stringify({ event: 'run-end', time: new Date().toISOString(), pid: process.pid, processed, counts, exitCode })}\n`)
    const summary: DatasetSummary = {
      type: 'summary',
      counts,
      processed,
      skipped: doneBefore,
      copied,
      scrubbed,
      copyErrors,
      manifest,
      report,
      wallMs: Math.round(performance.now() - started),
      exitCode,
    }
    emit(summary)
    return summary
  }
}

async function checkFolders(inRoot: string, outRoot: string): Promise<void> {
  const info = await stat(inRoot).catch(() => undefined)
  if (info === undefined) throw new UnfaceError('no such directory', { file: inRoot })
  if (!info.isDirectory()) throw new UnfaceError('is not a directory (dataset takes a folder; use deface for one file)', { file: inRoot })
  const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep)
  if (inside(outRoot, inRoot)) throw new UnfaceError('the output folder is inside the input dataset (choose a folder outside it)', { file: outRoot })
  if (inside(inRoot, outRoot)) throw new UnfaceError('the input dataset is inside the output folder', { file: outRoot })
  const out = await stat(outRoot).catch(() => undefined)
  if (out !== undefined && !out.isDirectory()) throw new UnfaceError('exists and is not a directory', { file: outRoot })
}

async function isDone(row: ManifestRow, inRoot: string, outRoot: string, settings: RowSettings, options: DatasetOptions): Promise<boolean> {
  if (options.force === true) return false
  if (options.retryFailed === true && (row.verdict === 'FAIL' || row.verdict === 'ERROR')) return false
  if (JSON.stringify(row.settings) !== JSON.stringify(settings)) return false
  const input = await stat(join(inRoot, row.input)).catch(() => undefined)
  if ((input?.size ?? null) !== row.inputBytes) return false
  if (row.released) {
    if (row.output === null) return false
    const output = await stat(join(outRoot, row.output)).catch(() => undefined)
    if (output === undefined || output.size !== row.outputBytes) return false
    if (row.sidecar !== null && !(await stat(join(outRoot, row.sidecar.output)).then(() => true, () => false))) return false
  }
  return true
}

function errorRow(
  input: string,
  error: string,
  settings: RowSettings,
  tool: { name: 'unface'; version: string; codeSha256: string },
  models: ModelIdentity | undefined,
): ManifestRow {
  return {
    input,
    inputSha256: null,
    inputBytes: null,
    output: null,
    outputSha256: null,
    outputBytes: null,
    verdict: 'ERROR',
    released: false,
    reasons: [error],
    error,
    voxels: null,
    mask: { source: 'self' },
    sidecar: null,
    report: null,
    settings,
    tool: { name: tool.name, version: tool.version, codeSha256: tool.codeSha256 },
    models: { segmentationSha256: models?.segmentationSha256 ?? null, faceCheckSha256: models?.faceCheckSha256 ?? null },
    timingsMs: {},
  }
}

function sameExceptTimings(a: ManifestRow | undefined, b: ManifestRow): boolean {
  if (a === undefined) return false
  const strip = (r: ManifestRow) => JSON.stringify({ ...r, timingsMs: {} })
  return strip(a) === strip(b)
}

/** Every path (relative to OUT_DIR) this shard writes, so that it cleans only its own stale temporaries. */
function targetsOf(outRoot: string, units: WorkUnit[], copies: string[], description: string | undefined, absolute: string[]): Set<string> {
  const targets = new Set<string>(copies)
  if (description !== undefined) targets.add(description)
  for (const path of absolute) targets.add(relative(outRoot, path).split(sep).join('/'))
  for (const unit of units) {
    for (const image of unit.images) {
      const reports = reportPathsOf(image.input)
      for (const t of [image.input, sidecarPathOf(image.input), reports.json, reports.png, reports.html, thumbnailPathOf(image.input)]) targets.add(t)
    }
  }
  return targets
}

/**
 * Temporary files (`.NAME.unface-*`, and folders for detached formats) are left only by a run
 * that was killed. Unsharded, all of them are removed; a shard removes only those of its own
 * targets, because other shards may be writing into the same folder right now.
 */
/** The copied BIDS scans and sessions tables that still give visit dates (see holdsVisitDates). */
async function tablesWithVisitDates(inRoot: string, copies: string[]): Promise<string[]> {
  const dated: string[] = []
  for (const rel of copies) {
    if (!rel.endsWith('.tsv')) continue
    const text = await readFile(join(inRoot, rel), 'utf8').catch(() => '')
    if (holdsVisitDates(rel, text)) dated.push(rel)
  }
  return dated
}

async function removeStaleTemporaries(outRoot: string, targets: Set<string> | undefined): Promise<number> {
  let removed = 0
  const visit = async (relDir: string) => {
    const entries = await readdir(relDir === '' ? outRoot : join(outRoot, relDir), { withFileTypes: true }).catch(() => [])
    for (const entry of entries) {
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`
      if (isUnfaceTemporary(entry.name)) {
        const target = /^\.(.+)\.unface-/.exec(entry.name)?.[1]
        const mine = targets === undefined || (target !== undefined && targets.has(relDir === '' ? target : `${relDir}/${target}`))
        if (mine) {
          await rm(join(outRoot, rel), { recursive: true, force: true })
          removed++
        }
      } else if (entry.isDirectory()) {
        await visit(rel)
      }
    }
  }
  await visit('')
  return removed
}
