/**
 * Renders the training and validation images of the render-face classifier
 * (models/train/train_render_face.py, models/README.md "Render-face classifier"):
 *
 *   npx tsx scripts/render-face-training-set.ts [--data DIR] [--out DIR]
 *
 * For every real head in ../shared/data it renders, with the verify stage's own renderer, the
 * original and copies of it with the face taken away or only nicked, from the 15 default views
 * and from random views around them, at the check's skin level, at the faint level and at
 * levels in between. Each image is the 256-pixel render averaged down to 128 pixels.
 *
 * Labels, by what a person looking at the render would say:
 * - 1 (a face): the original; a copy with only the nose tip cut off (a plane 15 mm behind it),
 *   where the eyes, lips and chin are still there.
 * - 0 (no face): unface's own remove-mode output, with and without --ears; copies cut by a plane
 *   65 mm and 90 mm behind the nose tip (plane-deface.ts); the skull-stripped control.
 * - -1 (not trained on, reported): chris_t1 (upper face only, image licence CC BY-NC 4.0) and the
 *   head CT quarter (lower face only), whose originals are partial faces.
 *
 * Writes OUT/images.u8 (128 x 128 bytes per image, one after another) and OUT/index.jsonl (one
 * line per image: head, person, variant, label, yaw, pitch, level). Deterministic: the random
 * views come from a seeded generator.
 */
import { mkdir, open, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../src/io/read-volume.js'
import type { Volume } from '../src/io/volume.js'
import { loadSegmentationModel, segmentHead } from '../src/segment/segment-head.js'
import { defaceVolume, DEFAULT_DEFACE_SETTINGS } from '../src/deface/deface-volume.js'
import { planeDeface } from '../src/verify/plane-deface.js'
import { DEFAULT_VIEWS, renderSkinLooks, skinLevels, type SkinLook, type ViewAngle } from '../src/verify/render-surface.js'
import { FAINT_VIEWS } from '../src/verify/verify-face-removed.js'
import { RENDER_FACE_INPUT_SIZE, shrinkView } from '../src/verify/render-face.js'
import { PARTIAL_FACE, PERSON, realHeads, skullStrippedControl, SHARED_DATA } from './real-volumes.js'

const { values } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' } } })
const DATA = resolve(values.data ?? SHARED_DATA)
const OUT = resolve(values.out ?? join(import.meta.dirname, '..', 'models', 'train', 'work', 'render-face'))

/** Mulberry32: a small seeded generator, so that the set is the same on every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const random = generator(20261203)
/** Views around the default ones: yaw within ±70°, pitch within ±30°, in whole degrees. */
const randomViews = (count: number): ViewAngle[] => Array.from({ length: count }, () => ({ yaw: Math.round(-70 + 140 * random()), pitch: Math.round(-30 + 60 * random()) }))

interface Variant {
  name: string
  label: number
  volume: Volume
  /** Views at the skin level, at the faint level, and at a level drawn between 0.8 and 1.2 of the skin's. */
  skin: ViewAngle[]
  faint: ViewAngle[]
  between: ViewAngle[]
}

await mkdir(OUT, { recursive: true })
const images = await open(join(OUT, 'images.u8'), 'w')
const index: string[] = []
const model = await loadSegmentationModel()

async function renderVariants(head: string, original: Volume, variants: Variant[]): Promise<void> {
  const levels = skinLevels(original)
  for (const variant of variants) {
    const betweenLevel = levels.skin * (0.8 + 0.4 * random())
    const looks: SkinLook[] = [
      { threshold: levels.skin, views: variant.skin },
      { threshold: levels.faint, views: variant.faint },
      { threshold: betweenLevel, views: variant.between },
    ]
    const rendered = renderSkinLooks(variant.volume, looks)
    const names = ['skin', 'faint', 'between']
    for (const [l, views] of rendered.entries()) {
      for (const view of views) {
        await images.write(shrinkView(view))
        index.push(JSON.stringify({ head, person: PERSON[head] ?? head, variant: variant.name, label: variant.label, yaw: view.yaw, pitch: view.pitch, level: names[l] }))
      }
    }
  }
}

const started = performance.now()
for (const path of realHeads(DATA)) {
  const head = basename(path).replace(/\.nii(\.gz)?$/, '')
  const original = await readVolume(path)
  const { labels } = await segmentHead(original, model)
  const removed = defaceVolume(original, labels, DEFAULT_DEFACE_SETTINGS).volume
  const withEars = defaceVolume(original, labels, { ...DEFAULT_DEFACE_SETTINGS, ears: true }).volume
  const faceLabel = head in PARTIAL_FACE ? -1 : 1
  const variants: Variant[] = [
    { name: 'original', label: faceLabel, volume: original, skin: [...DEFAULT_VIEWS, ...randomViews(15)], faint: [...FAINT_VIEWS, ...randomViews(5)], between: randomViews(10) },
    { name: 'nose-tip-cut', label: faceLabel, volume: planeDeface(original, { behindNoseMm: 15 }), skin: [...DEFAULT_VIEWS, ...randomViews(10)], faint: randomViews(5), between: [] },
    { name: 'unface-remove', label: 0, volume: removed, skin: [...DEFAULT_VIEWS, ...randomViews(15)], faint: [...FAINT_VIEWS, ...randomViews(5)], between: randomViews(10) },
    { name: 'unface-remove-ears', label: 0, volume: withEars, skin: [...DEFAULT_VIEWS], faint: [...FAINT_VIEWS], between: [] },
    { name: 'plane-90', label: 0, volume: planeDeface(original), skin: [...DEFAULT_VIEWS, ...randomViews(10)], faint: randomViews(5), between: [] },
    { name: 'plane-65', label: 0, volume: planeDeface(original, { behindNoseMm: 65 }), skin: [...DEFAULT_VIEWS, ...randomViews(10)], faint: randomViews(5), between: [] },
  ]
  await renderVariants(head, original, variants)
  console.log(`${head}: ${index.length} images so far, ${((performance.now() - started) / 1000).toFixed(0)} s`)
}
const control = await readVolume(skullStrippedControl(DATA))
await renderVariants('MR_Gd_skullstripped', control, [{ name: 'skull-stripped', label: 0, volume: control, skin: [...DEFAULT_VIEWS, ...randomViews(15)], faint: [...FAINT_VIEWS], between: randomViews(10) }])
await images.close()
await writeFile(join(OUT, 'index.jsonl'), `${index.join('\n')}\n`)
await writeFile(join(OUT, 'meta.json'), `${JSON.stringify({ imageSize: RENDER_FACE_INPUT_SIZE, count: index.length, data: DATA }, null, 1)}\n`)
console.log(`${index.length} images of ${RENDER_FACE_INPUT_SIZE}x${RENDER_FACE_INPUT_SIZE} in ${OUT}`)
await model.session.release()
