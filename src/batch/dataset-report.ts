/**
 * OUT_DIR/unface-report.html: one page for a reviewer to go through hundreds of scans quickly.
 * A grid of cards, failures and errors first, each with a thumbnail (frontal render before and
 * after, an oblique render after, the mid-sagittal slice with the removed region), the verdict,
 * the mask source and the first reason, linking to the image's full report. Thumbnails are
 * embedded, so the page is self-contained, up to EMBED_BUDGET_BYTES (failures first, so they are
 * always in); beyond that they are linked relative to the page and loaded lazily, so a page for
 * thousands of scans still opens. It is written row by row (one thumbnail in memory at a time)
 * and atomically, and holds no time stamp, so that the same manifest gives the same page.
 */
import { open, readFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { commitFile } from '../io/atomic-file.js'
import { VERSION } from '../version.js'
import { byCodeUnit } from './discover.js'
import { countVerdicts, type ManifestRow } from './manifest.js'

/** About 600 thumbnails. */
export const EMBED_BUDGET_BYTES = 48 * 1024 * 1024

const ORDER: Record<string, number> = { ERROR: 0, FAIL: 1, UNVERIFIED: 2, 'NO-FACE': 3, PASS: 4 }
const COLOURS: Record<string, string> = { ERROR: '#b00020', FAIL: '#d84315', UNVERIFIED: '#8d6e00', 'NO-FACE': '#546e7a', PASS: '#2e7d32' }

export interface ReportRow {
  row: ManifestRow
  /** The OUT_DIR that the row's report and thumbnail paths are relative to. */
  root: string
}

export function reviewOrder(a: ReportRow, b: ReportRow): number {
  return (ORDER[a.row.verdict] ?? 9) - (ORDER[b.row.verdict] ?? 9) || byCodeUnit(a.row.input, b.row.input)
}

export async function writeDatasetReport(path: string, rows: ReportRow[], title: string): Promise<void> {
  const sorted = [...rows].sort(reviewOrder)
  const counts = countVerdicts(sorted.map((r) => r.row))
  const here = dirname(path)
  await commitFile(
    path,
    async (temporary) => {
      const handle = await open(temporary, 'w')
      try {
        await handle.write(head(title, counts, sorted))
        const budget = { left: EMBED_BUDGET_BYTES }
        for (const item of sorted) await handle.write(await card(item, here, budget))
        await handle.write(TAIL)
      } finally {
        await handle.close()
      }
    },
    true,
  )
}

function head(title: string, counts: ReturnType<typeof countVerdicts>, rows: ReportRow[]): string {
  const models = [...new Set(rows.map((r) => r.row.models.segmentationSha256).filter((s): s is string => s !== null))]
  const tools = [...new Set(rows.map((r) => `${r.row.tool.version} (code ${r.row.tool.codeSha256.slice(0, 12)})`))]
  const stat = (label: string, n: number, verdict: string) =>
    `<button data-show="${verdict}"><b style="color:${COLOURS[verdict] ?? '#000'}">${n}</b> ${label}</button>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#555;margin-bottom:10px}
.bar button{font:inherit;margin:0 6px 8px 0;padding:4px 10px;border:1px solid #ccc;background:#fff;border-radius:4px;cursor:pointer}
.bar button.on{border-color:#333;background:#eee}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:10px}
.card{background:#fff;border:1px solid #ddd;border-left:6px solid var(--c);border-radius:4px;padding:6px}
.card img{display:block;width:100%;height:auto;background:#000}
.card .noimg{height:80px;display:flex;align-items:center;justify-content:center;background:#eee;color:#777}
.path{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.verdict{font-weight:bold;color:var(--c)}
.why{color:#444;font-size:12px}
a{color:inherit}
</style></head><body>
<h1>${escape(title)}</h1>
<div class="meta">unface ${escape(VERSION)}; rows made by unface ${escape(tools.join(', '))}; segmentation model ${escape(models.map((m) => m.slice(0, 12)).join(', ') || 'none')}.
Failures and errors come first. Only PASS and NO-FACE (and UNVERIFIED, with --no-verify) images were released.</div>
<div class="bar"><button data-show="all" class="on"><b>${counts.total}</b> images</button>${stat('errors', counts.errors, 'ERROR')}${stat('failed verification', counts.failed, 'FAIL')}${counts.unverified > 0 ? stat('unverified', counts.unverified, 'UNVERIFIED') : ''}${stat('no face', counts.noFace, 'NO-FACE')}${stat('passed', counts.passed, 'PASS')}</div>
<div class="grid">
`
}

const TAIL = `</div>
<script>
for (const b of document.querySelectorAll('.bar button')) b.onclick = () => {
  for (const o of document.querySelectorAll('.bar button')) o.classList.toggle('on', o === b)
  for (const c of document.querySelectorAll('.card')) c.hidden = b.dataset.show !== 'all' && c.dataset.verdict !== b.dataset.show
}
</script>
</body></html>
`

async function card({ row, root }: ReportRow, here: string, budget: { left: number }): Promise<string> {
  const colour = COLOURS[row.verdict] ?? '#000'
  const fromHere = (path: string) => relative(here, join(root, path)).split(sep).join('/')
  let picture = '<div class="noimg">no renders</div>'
  if (row.report?.thumbnail !== undefined) {
    const bytes = budget.left > 0 ? await readFile(join(root, row.report.thumbnail)).catch(() => undefined) : undefined
    if (bytes !== undefined) {
      budget.left -= bytes.length
      picture = `<img alt="renders before and after" src="data:image/jpeg;base64,${bytes.toString('base64')}">`
    } else if (budget.left <= 0) {
      picture = `<img alt="renders before and after" loading="lazy" src="${escape(fromHere(row.report.thumbnail))}">`
    }
  }
  const link = row.report === null ? undefined : fromHere(row.report.html)
  const mask = row.mask.source === 'mask-from' ? `mask from ${row.mask.from}` : row.mask.note === undefined ? 'own mask' : `own mask: ${row.mask.note}`
  const brain = row.voxels === null ? '' : `; brain voxels changed: ${row.voxels.brainChanged}`
  const what = `${row.verdict}${row.released ? ', released' : ', not released'}`
  const path = link === undefined ? escape(row.input) : `<a href="${escape(link)}">${escape(row.input)}</a>`
  return `<div class="card" data-verdict="${row.verdict}" style="--c:${colour}">${picture}
<div class="path">${path}</div>
<div><span class="verdict">${escape(what)}</span> <span class="why">${escape(mask)}${escape(brain)}</span></div>
<div class="why">${escape(row.reasons[0] ?? '')}</div></div>
`
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)
}
