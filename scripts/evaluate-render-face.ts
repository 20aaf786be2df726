/**
 * The shipped render-face classifier on renders it was never trained on (models/unface-render-face.md):
 *
 *   npx tsx scripts/evaluate-render-face.ts [--data DIR] [--model FILE]
 *
 * For every real head it renders the 15 default views at the check's skin level of copies the
 * training set does not hold: unface's blur-mode output, and planes 30, 40 and 50 mm behind the
 * nose tip (between the nicked nose that is still a face and the 65 mm cut that is none). The
 * originals of chris_t1 (upper face only) and of the head CT (lower face only) were never trained
 * on either. It prints, per variant, how many views the classifier calls a face, and the photo
 * detector's count beside it.
 */
import { basename, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../src/io/read-volume.js'
import type { Volume } from '../src/io/volume.js'
import { defaceVolume, DEFAULT_DEFACE_SETTINGS } from '../src/deface/deface-volume.js'
import { loadSegmentationModel, segmentHead } from '../src/segment/segment-head.js'
import { detectFaces, loadFaceModel } from '../src/verify/face-detector.js'
import { DEFAULT_GALLERY_PATH, parseGallery } from '../src/verify/face-gallery.js'
import { planeDeface } from '../src/verify/plane-deface.js'
import { DEFAULT_RENDER_FACE_MODEL_PATH, loadRenderFaceModel, renderFaceScores, RENDER_FACE_THRESHOLD } from '../src/verify/render-face.js'
import { renderSkinViews, skinThreshold } from '../src/verify/render-surface.js'
import { readFile } from 'node:fs/promises'
import { realHeads, SHARED_DATA } from './real-volumes.js'

const { values } = parseArgs({ options: { data: { type: 'string' }, model: { type: 'string' } } })
const data = resolve(values.data ?? SHARED_DATA)
const [segmentation, renderFace, detector] = await Promise.all([loadSegmentationModel(), loadRenderFaceModel(values.model ?? DEFAULT_RENDER_FACE_MODEL_PATH), loadFaceModel()])
const detectorThreshold = parseGallery(await readFile(DEFAULT_GALLERY_PATH, 'utf8')).calibration.faceScoreThreshold

const VARIANTS = ['original', 'blur', 'plane-30', 'plane-40', 'plane-50'] as const
type Variant = (typeof VARIANTS)[number]
const totals = new Map<Variant, { faces: number; detector: number; views: number }>(VARIANTS.map((v) => [v, { faces: 0, detector: 0, views: 0 }]))

console.log(`render-face classifier ${basename(values.model ?? DEFAULT_RENDER_FACE_MODEL_PATH)}, threshold ${RENDER_FACE_THRESHOLD}; photo detector threshold ${detectorThreshold}`)
console.log('views with a face, classifier (detector), of the 15 default views\n')
console.log(`| head | ${VARIANTS.join(' | ')} |`)
console.log(`|---|${VARIANTS.map(() => '---|').join('')}`)
for (const path of realHeads(data)) {
  const head = basename(path).replace(/\.nii(\.gz)?$/, '')
  const original = await readVolume(path)
  const threshold = skinThreshold(original)
  const { labels } = await segmentHead(original, segmentation)
  const copies: Record<Variant, Volume> = {
    original,
    blur: defaceVolume(original, labels, { ...DEFAULT_DEFACE_SETTINGS, mode: 'blur' }).volume,
    'plane-30': planeDeface(original, { threshold, behindNoseMm: 30 }),
    'plane-40': planeDeface(original, { threshold, behindNoseMm: 40 }),
    'plane-50': planeDeface(original, { threshold, behindNoseMm: 50 }),
  }
  const cells: string[] = []
  for (const variant of VARIANTS) {
    const views = renderSkinViews(copies[variant], { threshold })
    const faces = (await renderFaceScores(renderFace, views)).filter((s) => s >= RENDER_FACE_THRESHOLD).length
    let detected = 0
    for (const view of views) if (((await detectFaces(detector, view))[0]?.score ?? 0) >= detectorThreshold) detected++
    const total = totals.get(variant) as { faces: number; detector: number; views: number }
    total.faces += faces
    total.detector += detected
    total.views += views.length
    cells.push(`${faces} (${detected})`)
  }
  console.log(`| ${head} | ${cells.join(' | ')} |`)
}
console.log(`| all | ${VARIANTS.map((v) => { const t = totals.get(v) as { faces: number; detector: number; views: number }; return `${t.faces}/${t.views} (${t.detector})` }).join(' | ')} |`)
await segmentation.session.release()
await renderFace.session.release()
