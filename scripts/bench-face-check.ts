/**
 * Times the face check on one head (by default the bundled sample), as docs/face-check.md quotes:
 *
 *   npx tsx scripts/bench-face-check.ts [IN] [--runs N] [--configs tiny128,tiny160,tiny224,ssd]
 *
 * Prints the model load time; per 256x256 view, for each detector configuration, the median time
 * of a detector pass, of detector + landmarks + descriptor, and of a descriptor at a given box;
 * then the whole check (15 original and 15 plane-defaced views, default configuration) and the
 * whole verify stage (rendering included), as medians over the runs.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../src/io/read-volume.js'
import { renderSkinViews, skinThreshold, type RenderedView } from '../src/verify/render-surface.js'
import { planeDeface } from '../src/verify/plane-deface.js'
import { describeBox, detectFaces, inspectView, loadFaceModel, type FaceModelOptions } from '../src/verify/face-detector.js'
import { checkFace, observeDefaced, observeOriginal } from '../src/verify/face-check.js'
import { loadFaceCheck, verifyFaceRemoved } from '../src/verify/verify-face-removed.js'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { runs: { type: 'string' }, configs: { type: 'string' } } })
const input = positionals[0] ?? join(import.meta.dirname, '..', 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz')
const runs = Number(values.runs ?? 5)
const configs = (values.configs ?? 'tiny128,tiny160,tiny224,ssd').split(',')

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number
async function time<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now()
  const result = await work()
  return [result, performance.now() - start]
}

const [, loadMs] = await time(() => loadFaceModel())
console.log(`${input}\nface model load (backend + 4 networks, once per process): ${loadMs.toFixed(0)} ms`)
const volume = await readVolume(input)
const threshold = skinThreshold(volume)
const defacedVolume = planeDeface(volume, { threshold })
const [original, renderOriginalMs] = await time(async () => renderSkinViews(volume, { threshold }))
const [defaced, renderDefacedMs] = await time(async () => renderSkinViews(defacedVolume, { threshold }))
console.log(`render 15 views: original ${renderOriginalMs.toFixed(0)} ms, plane-defaced ${renderDefacedMs.toFixed(0)} ms`)

const frontal = original[7] as RenderedView
for (const config of configs) {
  const options: FaceModelOptions = config === 'ssd' ? { detector: 'ssd' } : { detector: 'tiny', inputSize: Number(config.replace('tiny', '')) }
  const model = await loadFaceModel(options)
  const { face } = await inspectView(model, frontal, 0)
  if (face === undefined) throw new Error(`${config}: no face on the frontal view`)
  for (const view of original.slice(0, 3)) await inspectView(model, view, 0) // warm-up
  const detect: number[] = []
  const full: number[] = []
  const describe: number[] = []
  const repeats = config === 'ssd' ? 1 : Math.max(1, Math.round(runs / 2))
  for (let r = 0; r < repeats; r++) {
    for (const view of original) {
      detect.push((await time(() => detectFaces(model, view)))[1])
      full.push((await time(() => inspectView(model, frontal, 0)))[1])
      describe.push((await time(() => describeBox(model, view, face.descriptorBox)))[1])
    }
  }
  console.log(
    `${config}: per view, detector ${median(detect).toFixed(1)} ms; detector + landmarks + descriptor ${median(full).toFixed(1)} ms; descriptor at a box ${median(describe).toFixed(1)} ms (medians of ${detect.length})`,
  )
}

const check = await loadFaceCheck()
const totals: number[] = []
const originals: number[] = []
const defaceds: number[] = []
let status = ''
let described = 0
for (let r = 0; r < runs; r++) {
  const threshold = check.gallery.calibration.faceScoreThreshold
  const [observed, originalMs] = await time(() => observeOriginal(check.model, check.renderFace, original, threshold))
  const [, defacedMs] = await time(() => observeDefaced(check.model, check.renderFace, defaced, observed))
  const [verdict, totalMs] = await time(() => checkFace(check.model, check.renderFace, original, defaced, check.gallery))
  originals.push(originalMs)
  defaceds.push(defacedMs)
  totals.push(totalMs)
  status = verdict.status
  described = observed.filter((o) => o.descriptor !== undefined).length
}
console.log(
  `face check, 15 original + 15 plane-defaced views (${check.identity.name}): ${median(totals).toFixed(0)} ms median of ${runs} (min ${Math.min(...totals).toFixed(0)}); original views ${median(originals).toFixed(0)} ms (${described} with a face, described), defaced views ${median(defaceds).toFixed(0)} ms; verdict ${status}`,
)
const stage: number[] = []
for (let r = 0; r < Math.max(1, Math.round(runs / 2)); r++) stage.push((await time(() => verifyFaceRemoved(volume, defacedVolume, check)))[1])
console.log(`verify stage (render both + face check): ${median(stage).toFixed(0)} ms median of ${stage.length}`)
