/**
 * The page a privacy reviewer reads: one self-contained HTML file (the montage is embedded, no
 * scripts, nothing fetched) that opens anywhere, including on an air-gapped review machine.
 */
import type { DefaceReport, Verdict } from './deface-report.js'

const VERDICT_COLOURS: Record<Verdict, string> = { PASS: '#1b7f3b', FAIL: '#b3261e', 'NO-FACE': '#5f6368', UNVERIFIED: '#b06000' }

export function reportPage(report: DefaceReport, montagePng: Buffer): string {
  const rows: Array<[string, string]> = [
    ['input', report.input.path],
    ['output', report.output ?? (report.quarantine === undefined ? 'not released' : `not released; kept for review at ${report.quarantine}`)],
    ['scan', `${report.input.format}, ${report.input.size.join(' x ')} voxels of ${report.input.spacing.map((s) => s.toFixed(2)).join(' x ')} mm, ${report.input.modality}`],
    ['mode', `${report.settings.mode}${report.settings.ears ? ', ears removed' : ''}, brain margin ${report.settings.brainMarginMm} mm`],
    ['voxels changed', `${report.voxels.changed} (brain voxels changed: ${report.voxels.brainChanged})`],
    ['segmentation', `face ${report.voxels.face}, ears ${report.voxels.ears}, brain ${report.voxels.brain} voxels`],
    ['tool', `${report.tool.name} ${report.tool.version}, code sha256 ${report.tool.codeSha256.slice(0, 16)}…`],
    ['segmentation model', `sha256 ${report.models.segmentation.sha256.slice(0, 16)}…`],
    ['timings', Object.entries(report.timingsMs).map(([stage, ms]) => `${stage} ${ms} ms`).join(', ')],
  ]
  const views = report.views
    .map(
      (v) =>
        `<tr><td>${v.yaw}</td><td>${v.pitch}</td><td>${marked(v.originalFace, v.originalScore, v.originalRenderFace)}</td><td>${marked(v.defacedFace, v.defacedScore, v.defacedRenderFace)}</td><td>${score(v.distanceToOriginal)}</td><td>${score(v.distanceToGallery)}</td><td>${v.identified ? '<b>yes</b>' : 'no'}</td></tr>`,
    )
    .join('\n')
  const faint =
    report.faint === undefined
      ? ''
      : `<h2>Rendered again at the faint skin level (${report.faint.threshold.toPrecision(4)})</h2>
<table><tr><th>yaw</th><th>pitch</th><th>after: detector score / render-face probability</th></tr>
${report.faint.views.map((v) => `<tr><td>${v.yaw}</td><td>${v.pitch}</td><td>${marked(v.defacedFace, v.defacedScore, v.defacedRenderFace)}</td></tr>`).join('\n')}</table>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>unface: ${escape(report.verdict)} ${escape(report.input.path)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#202124;max-width:1800px}
.verdict{display:inline-block;padding:.3em .8em;border-radius:.3em;color:#fff;font-weight:bold;font-size:1.4em;background:${VERDICT_COLOURS[report.verdict]}}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #dadce0;padding:.25em .6em;text-align:left;vertical-align:top}
img{max-width:100%;border:1px solid #dadce0}
</style></head><body>
<h1>unface report</h1>
<p><span class="verdict">${escape(report.verdict)}</span> ${report.released ? 'released' : '<b>not released</b>'}</p>
<ul>${report.reasons.map((r) => `<li>${escape(r)}</li>`).join('')}</ul>
<img alt="renders before (top) and after (bottom), and the mid-sagittal slice with the removed region" src="data:image/png;base64,${montagePng.toString('base64')}">
<table>${rows.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('\n')}</table>
<h2>Face check per view</h2>
<table><tr><th>yaw</th><th>pitch</th><th>before: detector score / render-face probability</th><th>after: detector score / render-face probability</th><th>distance to own original</th><th>distance to nearest other head</th><th>identified</th></tr>
${views}</table>
${faint}
${report.notes.length === 0 ? '' : `<h2>Notes</h2><ul>${report.notes.map((n) => `<li>${escape(n)}</li>`).join('')}</ul>`}
</body></html>
`
}

/** Both networks' numbers for one render, in bold where they make it a face. */
function marked(face: boolean, detector: number | undefined, renderFace: number): string {
  const text = `${score(detector)} / ${renderFace.toFixed(3)}`
  return face ? `<b>${text}</b>` : text
}

function score(value: number | undefined): string {
  return value === undefined ? '–' : value.toFixed(3)
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
