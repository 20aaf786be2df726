/**
 * `npm run eval`: deface, verify and report every real head in ../shared/data/heads, both DICOM
 * series and the skull-stripped control, and tabulate per volume what the issue asks for: faces
 * found on the original and on the defaced renders, the embedding distances, the brain-mask
 * (DLMUSE) voxels changed where a mask exists, the verdict and the time. Prints Markdown for
 * docs/results.md; reports go to .tmp/eval/ (git-ignored) for looking at.
 *   npm run eval [-- --mode blur] [-- --ears] [-- --at-1mm]
 * --at-1mm evaluates the IXI heads resampled from 2 mm to 256^3 at 1 mm instead (as
 * `npm run bench:dataset` makes them), the resolution of most research T1s; their DLMUSE brains
 * are carried to 1 mm the same way (brainAt1mm).
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { defaceFile, loadModels } from '../src/pipeline.js'
import { readVolume } from '../src/io/read-volume.js'
import { writeVolume } from '../src/io/write-volume.js'
import { allocateVoxels, withVoxels, type Volume } from '../src/io/volume.js'
import type { DefaceMode } from '../src/deface/deface-volume.js'
import type { FaceViewCheck } from '../src/verify/verify-face-removed.js'
import { DEFAULT_GALLERY_PATH, parseGallery } from '../src/verify/face-gallery.js'
import { RENDER_FACE_THRESHOLD } from '../src/verify/render-face.js'
import { SHARED_DATA, realHeads, skullStrippedControl, upsampledTo1mm } from './real-volumes.js'

const { values } = parseArgs({
  options: { mode: { type: 'string', default: 'remove' }, ears: { type: 'boolean', default: false }, 'at-1mm': { type: 'boolean', default: false } },
})
const at1mm = values['at-1mm'] === true
const mode = values.mode as DefaceMode
const root = resolve(import.meta.dirname, '..')
const data = SHARED_DATA
if (!existsSync(data)) {
  console.error(`unface eval: ${data}: not found; the evaluation needs the real scans`)
  process.exit(1)
}
const work = join(root, '.tmp', 'eval')
await rm(work, { recursive: true, force: true })
await mkdir(join(work, 'out'), { recursive: true })

const inputs = at1mm ? await ixiHeadsAt1mm(join(work, '1mm')) : [...realHeads(data), skullStrippedControl(data)]

const models = await loadModels()
const detectorThreshold = parseGallery(await readFile(DEFAULT_GALLERY_PATH, 'utf8')).calibration.faceScoreThreshold
const name = (path: string) => basename(path).replace(/\.nii(\.gz)?$/, '')

console.log(`unface evaluation, ${new Date().toISOString()}, mode ${mode}${values.ears ? ', ears' : ''}, ${availableParallelism()} cores`)
console.log('`npm run eval' + (mode === 'remove' ? '' : ` -- --mode ${mode}`) + (values.ears ? ' -- --ears' : '') + (at1mm ? ' -- --at-1mm' : '') + '`\n')
console.log('| volume | faces on original views (frontal / all 15) | faces on defaced views | faint look: faces (best detector score / render-face probability) | own-original distance (min) | nearest other head (min) | identified views | brain-mask voxels changed | verdict | released | time (s) |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|')
const tally = { volumes: 0, pass: 0, fullFaceFrontal: 0, fullFaceFrontalViews: 0, fullFaceAll: 0, fullFaceAllViews: 0, fullFaceByDetector: 0, fullFaceByClassifier: 0, defacedViewsWithFace: 0, defacedViews: 0, faintViewsWithFace: 0, faintViews: 0 }
for (const input of inputs) {
  const output = join(work, 'out', `${name(input)}_defaced.nii.gz`)
  const start = performance.now()
  const result = await defaceFile(input, { output, models, mode, ears: values.ears === true, reportDir: join(work, 'reports') })
  const seconds = (performance.now() - start) / 1000
  const views = result.views as FaceViewCheck[]
  const frontal = views.filter((v) => v.yaw === 0)
  const brainMask = join(data, 'brainmasks', `${name(input)}_DLMUSE.nii.gz`)
  let brainChanged = '–'
  if (existsSync(brainMask) && result.released) {
    const [original, defaced, mask] = await Promise.all([readVolume(input), readVolume(output), readVolume(brainMask)])
    const brain = at1mm ? brainAt1mm(mask) : mask.data
    let changed = 0
    for (let i = 0; i < brain.length; i++) if ((brain[i] as number) > 0 && defaced.data[i] !== original.data[i]) changed++
    brainChanged = String(changed)
  }
  const min = (values: Array<number | undefined>) => {
    const present = values.filter((v): v is number => v !== undefined)
    return present.length === 0 ? '–' : Math.min(...present).toFixed(3)
  }
  const fullFace = (at1mm || input.includes('/heads/')) && !input.includes('chris_t1')
  tally.volumes++
  if (result.verdict === 'PASS') tally.pass++
  if (fullFace) {
    tally.fullFaceFrontal += frontal.filter((v) => v.originalFace).length
    tally.fullFaceFrontalViews += frontal.length
    tally.fullFaceAll += views.filter((v) => v.originalFace).length
    tally.fullFaceAllViews += views.length
    tally.fullFaceByDetector += views.filter((v) => (v.originalScore ?? 0) >= detectorThreshold).length
    tally.fullFaceByClassifier += views.filter((v) => v.originalRenderFace >= RENDER_FACE_THRESHOLD).length
  }
  tally.defacedViewsWithFace += views.filter((v) => v.defacedFace).length
  tally.defacedViews += views.length
  const faint = result.faint?.views ?? []
  tally.faintViewsWithFace += faint.filter((v) => v.defacedFace).length
  tally.faintViews += faint.length
  const faintLook = faint.length === 0 ? '–' : `${faint.filter((v) => v.defacedFace).length}/${faint.length} (${Math.max(0, ...faint.map((v) => v.defacedScore ?? 0)).toFixed(2)} / ${Math.max(0, ...faint.map((v) => v.defacedRenderFace)).toFixed(2)})`
  console.log(
    `| ${name(input)} | ${frontal.filter((v) => v.originalFace).length}/${frontal.length} / ${views.filter((v) => v.originalFace).length}/${views.length} | ${views.filter((v) => v.defacedFace).length}/${views.length} | ${faintLook} | ${min(views.map((v) => v.distanceToOriginal))} | ${min(views.map((v) => v.distanceToGallery))} | ${views.filter((v) => v.identified).length} | ${brainChanged} | ${result.verdict} | ${result.released ? 'yes' : 'no'} | ${seconds.toFixed(1)} |`,
  )
}
const percent = (a: number, b: number) => (b === 0 ? '–' : `${((100 * a) / b).toFixed(0)}%`)
console.log(`\nFrontal original views of the full-face heads with a face found: ${tally.fullFaceFrontal}/${tally.fullFaceFrontalViews} (${percent(tally.fullFaceFrontal, tally.fullFaceFrontalViews)}).`)
console.log(
  `All 15 original views of the full-face heads with a face found: ${tally.fullFaceAll}/${tally.fullFaceAllViews} (${percent(tally.fullFaceAll, tally.fullFaceAllViews)}); by the photo detector ${tally.fullFaceByDetector} (${percent(tally.fullFaceByDetector, tally.fullFaceAllViews)}), by the render-face classifier ${tally.fullFaceByClassifier} (${percent(tally.fullFaceByClassifier, tally.fullFaceAllViews)}).`,
)
console.log(`Defaced views with a face found: ${tally.defacedViewsWithFace}/${tally.defacedViews} (${percent(tally.defacedViewsWithFace, tally.defacedViews)}); at the faint skin level: ${tally.faintViewsWithFace}/${tally.faintViews}. PASS: ${tally.pass}/${tally.volumes}.`)

/**
 * The 2 mm DLMUSE brain on the 1 mm grid of ixiHeadsAt1mm: the binary mask interpolated as the
 * head was, brain where at least half. (Counting every 1 mm voxel whose interpolation touches a
 * brain voxel at all, 1.6% weight or more, finds a few changed ones 1-2 mm outside the mask's
 * edge: docs/results.md.)
 */
function brainAt1mm(mask: Volume): Uint8Array {
  const binary = allocateVoxels('uint8', mask.data.length)
  for (let i = 0; i < binary.length; i++) binary[i] = (mask.data[i] as number) > 0 ? 100 : 0
  const share = upsampledTo1mm(withVoxels(mask, binary)).data
  return Uint8Array.from(share, (percent) => (percent >= 50 ? 1 : 0))
}

/** The IXI heads of ../shared/data/heads, each resampled to 256^3 at 1 mm, in `folder`. */
async function ixiHeadsAt1mm(folder: string): Promise<string[]> {
  await mkdir(folder, { recursive: true })
  const paths: string[] = []
  for (const head of realHeads(data).filter((path) => basename(path).startsWith('IXI'))) {
    const path = join(folder, basename(head))
    await writeVolume(upsampledTo1mm(await readVolume(head)), path)
    paths.push(path)
  }
  return paths
}
