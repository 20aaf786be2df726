/**
 * What a dataset run tells the person or the program watching it:
 * - on a terminal, one progress bar on stderr with counts, rate and ETA, redrawn in place;
 * - when stderr is piped, one plain line per finished image;
 * - with --json, JSON lines on stdout (`plan`, one `file` per image, `summary`), nothing else there.
 * The summary line goes to stderr in the first two cases.
 */
import type { ManifestRow, VerdictCounts } from './manifest.js'

export interface DatasetPlanEvent {
  type: 'plan'
  layout: 'bids' | 'plain'
  /** Images in this run's selection (shard, participants). */
  images: number
  /** Of these, already done by an earlier run. */
  done: number
  /** To do now. */
  todo: number
  copies: number
  /** Of the copies, how many are volumes copied unchanged (BIDS func/, dwi/, derivatives/...: not defaced), and the first few. */
  copiedVolumes: number
  copiedVolumeExamples: string[]
  refused: number
  jobs: number
  shard: string | null
  /** Things the user should know before the run: a lock taken over, a damaged manifest line. */
  notes: string[]
}

export interface DatasetSummary {
  type: 'summary'
  counts: VerdictCounts
  /** Images defaced by this run (not counting those done before). */
  processed: number
  /** Images found done from an earlier run. */
  skipped: number
  copied: number
  /** JSON files rewritten without identifying fields. */
  scrubbed: number
  /** Files other than images that could not be copied or scrubbed. */
  copyErrors: Array<{ path: string; error: string }>
  manifest: string
  report: string
  wallMs: number
  exitCode: number
}

export type DatasetEvent = DatasetPlanEvent | { type: 'start'; input: string } | { type: 'file'; row: ManifestRow } | DatasetSummary

export interface DatasetProgress {
  event(event: DatasetEvent): void
  done(): void
}

export function datasetProgress(streams: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }, json: boolean): DatasetProgress {
  const tty = (streams.stderr as NodeJS.WriteStream).isTTY === true && !json
  const start = performance.now()
  let plan: DatasetPlanEvent | undefined
  let finished = 0
  const tally = { passed: 0, failed: 0, noFace: 0, errors: 0 }
  const running = new Set<string>()
  let timer: NodeJS.Timeout | undefined

  const draw = () => {
    if (plan === undefined) return
    const total = plan.todo
    const elapsed = (performance.now() - start) / 1000
    const fraction = total === 0 ? 1 : finished / total
    const width = 24
    const filled = Math.round(fraction * width)
    const rate = finished > 0 ? finished / (elapsed / 60) : 0
    const eta = finished > 0 ? ((total - finished) * elapsed) / finished : undefined
    const latest = [...running].pop() ?? ''
    const line =
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${finished}/${total}` +
      ` ${rate.toFixed(1)}/min ETA ${eta === undefined ? '--' : duration(eta)}` +
      ` | ${tally.passed} ok ${tally.failed} failed ${tally.noFace} no-face ${tally.errors} errors` +
      (latest === '' ? '' : ` | ${latest}`)
    const columns = (streams.stderr as NodeJS.WriteStream).columns ?? 120
    streams.stderr.write(`\r\x1b[2K${line.slice(0, Math.max(20, columns - 1))}`)
  }

  return {
    event(event) {
      if (json) {
        if (event.type !== 'start') streams.stdout.write(`${JSON.stringify(event)}\n`)
        return
      }
      if (event.type === 'plan') {
        plan = event
        const done = event.done > 0 ? `, ${event.done} done before` : ''
        const shard = event.shard === null ? '' : ` (shard ${event.shard})`
        streams.stderr.write(
          `unface: ${event.layout === 'bids' ? 'BIDS dataset' : 'folder'}${shard}: ${event.images} images${done}, ${event.todo} to deface with ${event.jobs} job(s); ${event.copies} other files\n`,
        )
        for (const note of event.notes) streams.stderr.write(`unface: note: ${note}\n`)
        if (event.copiedVolumes > 0) {
          const examples = event.copiedVolumeExamples.slice(0, 3).join(', ')
          streams.stderr.write(
            `unface: note: ${event.copiedVolumes} volume file(s) outside anat/ are copied unchanged, not defaced (${examples}${event.copiedVolumes > 3 ? ', ...' : ''}); deface them with --include or leave them out with --exclude\n`,
          )
        }
        if (tty) {
          timer = setInterval(draw, 500)
          timer.unref()
          draw()
        }
        return
      }
      if (event.type === 'start') {
        running.add(event.input)
        if (tty) draw()
        return
      }
      if (event.type === 'file') {
        const { row } = event
        running.delete(row.input)
        finished++
        if (row.verdict === 'PASS' || row.verdict === 'UNVERIFIED') tally.passed++
        else if (row.verdict === 'NO-FACE') tally.noFace++
        else if (row.verdict === 'FAIL') tally.failed++
        else tally.errors++
        const seconds = ((row.timingsMs.total ?? 0) / 1000).toFixed(1)
        const what = row.verdict === 'ERROR' ? `ERROR ${row.error ?? ''}` : `${row.verdict}${row.released ? '' : ' (not released)'}`
        const mask = row.mask.source === 'mask-from' ? ` [mask from ${row.mask.from}]` : ''
        const text = `unface: [${finished}/${plan?.todo ?? '?'}] ${row.input}: ${what}${mask} ${seconds}s`
        if (tty) {
          // Failures stay on screen above the bar; passes only move the bar.
          if (row.verdict === 'FAIL' || row.verdict === 'ERROR') streams.stderr.write(`\r\x1b[2K${text}\n`)
          draw()
        } else {
          streams.stderr.write(`${text}\n`)
        }
        return
      }
      if (timer !== undefined) clearInterval(timer)
      if (tty) streams.stderr.write('\r\x1b[2K')
      const c = event.counts
      const parts = [
        `${c.passed} passed`,
        `${c.failed} failed verification`,
        `${c.noFace} no face`,
        ...(c.unverified > 0 ? [`${c.unverified} unverified`] : []),
        `${c.errors} errors`,
      ]
      const before = event.skipped > 0 ? ` (${event.skipped} done before)` : ''
      streams.stderr.write(`unface: ${c.total} images: ${parts.join(', ')}${before}; ${event.copied} files copied, ${event.scrubbed} JSON files scrubbed; ${duration(event.wallMs / 1000)}\n`)
      for (const problem of event.copyErrors) streams.stderr.write(`unface: ${problem.path}: ${problem.error}\n`)
      streams.stderr.write(`unface: manifest ${event.manifest}\nunface: report ${event.report}\n`)
    },
    done() {
      if (timer !== undefined) clearInterval(timer)
    },
  }
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--'
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}
