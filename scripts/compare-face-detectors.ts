/**
 * Compares detector configurations on the real heads, as docs/face-check.md quotes:
 *
 *   npx tsx scripts/compare-face-detectors.ts [--data DIR] [--configs tiny128,tiny160,tiny192,tiny224,tiny320,ssd]
 *
 * Renders the 15 default views of every head in DATA/heads and the two DICOM series, of their
 * plane-defaced copies (src/verify/plane-deface.ts defaults), and of the skull-stripped control,
 * and for each configuration prints: the time per view of one detector pass; the threshold at
 * which a face is found on 90% of the original views of the full-face heads, over all 15 views
 * and over the frontal ones (yaw 0); and at each threshold the share of plane-defaced views (of
 * the same views) and control views where the detector also fires.
 */
import { basename, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../src/io/read-volume.js'
import { DEFAULT_VIEWS, renderSkinViews, skinThreshold, type RenderedView, type ViewAngle } from '../src/verify/render-surface.js'
import { planeDeface } from '../src/verify/plane-deface.js'
import { detectFaces, loadFaceModel, type FaceModelOptions } from '../src/verify/face-detector.js'
import { PARTIAL_FACE, realHeads, skullStrippedControl } from './real-volumes.js'

const { values } = parseArgs({ options: { data: { type: 'string' }, configs: { type: 'string' } } })
const DATA = resolve(values.data ?? join(import.meta.dirname, '..', '..', 'shared', 'data'))
const configs = (values.configs ?? 'tiny128,tiny160,tiny192,tiny224,tiny320,ssd').split(',')

const inputs = realHeads(DATA)
const renders: Array<{ id: string; original: RenderedView[]; defaced: RenderedView[] }> = []
for (const path of inputs) {
  const volume = await readVolume(path)
  const threshold = skinThreshold(volume)
  renders.push({
    id: basename(path).replace(/\.nii(\.gz)?$/, ''),
    original: renderSkinViews(volume, { threshold }),
    defaced: renderSkinViews(planeDeface(volume, { threshold }), { threshold }),
  })
}
const control = renderSkinViews(await readVolume(skullStrippedControl(DATA)))
const full = renders.filter((r) => !(r.id in PARTIAL_FACE))

const pick = {
  'all 15 views': (_: ViewAngle) => true,
  'frontal views (yaw 0)': (v: ViewAngle) => v.yaw === 0,
}
const pct = (x: number) => `${(x * 100).toFixed(0)}%`
console.log(`${full.length} full-face heads, ${renders.length - full.length} partial, 1 control; plane-defaced copies of all\n`)
console.log('| configuration | ms per view | views | threshold for 90% of original views | plane-defaced views with a face | control views with a face |')
console.log('|---|---|---|---|---|---|')
for (const config of configs) {
  const options: FaceModelOptions = config === 'ssd' ? { detector: 'ssd' } : { detector: 'tiny', inputSize: Number(config.replace('tiny', '')) }
  const model = await loadFaceModel(options)
  await detectFaces(model, full[0]?.original[7] as RenderedView) // warm-up
  let ms = 0
  let passes = 0
  const best = async (views: RenderedView[]) => {
    const scores: number[] = []
    for (const view of views) {
      const start = performance.now()
      scores.push((await detectFaces(model, view))[0]?.score ?? 0)
      ms += performance.now() - start
      passes++
    }
    return scores
  }
  const scored = []
  for (const r of renders) scored.push({ id: r.id, original: await best(r.original), defaced: await best(r.defaced) })
  const controlScores = await best(control)
  for (const [label, keep] of Object.entries(pick)) {
    const idx = DEFAULT_VIEWS.flatMap((v, i) => (keep(v) ? [i] : []))
    const originals = scored.filter((s) => !(s.id in PARTIAL_FACE)).flatMap((s) => idx.map((i) => s.original[i] as number)).sort((a, b) => a - b)
    const t = Math.floor((originals[Math.floor(0.1 * originals.length)] as number) * 100) / 100
    const defaced = scored.filter((s) => !(s.id in PARTIAL_FACE)).flatMap((s) => idx.map((i) => s.defaced[i] as number))
    const controlled = idx.map((i) => controlScores[i] as number)
    const share = (xs: number[]) => xs.filter((x) => x >= t).length / xs.length
    console.log(`| ${config} | ${(ms / passes).toFixed(1)} | ${label} | ${t.toFixed(2)} | ${pct(share(defaced))} | ${pct(share(controlled))} |`)
  }
}
