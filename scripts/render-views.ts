/**
 * Renders the verify stage's skin views of one volume, to look at them:
 *   npx tsx scripts/render-views.ts IN OUTDIR
 * writes OUTDIR/<name>_yaw<Y>_pitch<P>.png for every view and OUTDIR/<name>_montage.png.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { readVolume } from '../src/io/read-volume.js'
import { renderSkinViews, skinThreshold } from '../src/verify/render-surface.js'
import { montagePng, viewToPng } from '../src/verify/view-images.js'

const [input, outDir] = process.argv.slice(2)
if (input === undefined || outDir === undefined) {
  console.error('usage: npx tsx scripts/render-views.ts IN OUTDIR')
  process.exit(2)
}
const volume = await readVolume(input)
const threshold = skinThreshold(volume)
const start = performance.now()
const views = renderSkinViews(volume, { threshold })
const elapsed = performance.now() - start
const name = basename(input).replace(/\.(nii(\.gz)?|nrrd|nhdr|mha|mhd)$/, '')
await mkdir(outDir, { recursive: true })
for (const view of views) {
  await writeFile(join(outDir, `${name}_yaw${view.yaw}_pitch${view.pitch}.png`), await viewToPng(view))
}
// One row per pitch, one column per yaw.
await writeFile(join(outDir, `${name}_montage.png`), await montagePng(views, new Set(views.map((v) => v.yaw)).size))
const hits = views.map((v) => v.hitFraction.toFixed(2)).join(' ')
// The time includes the first call's JIT warm-up, as in a one-off command.
console.log(`${name}: threshold ${threshold.toPrecision(4)}, ${views.length} views in ${elapsed.toFixed(0)} ms, hit fractions ${hits}`)
