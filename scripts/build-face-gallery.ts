/**
 * Builds models/face-gallery.json, the face check's gallery and calibration, from the real heads
 * in ../shared/data, and prints the figures it measured (docs/face-check.md quotes them):
 *
 *   npx tsx scripts/build-face-gallery.ts [--data DIR] [--out FILE] [--behind-nose MM]
 *
 * For every head (the 19 NIfTI heads and the two DICOM series) it renders the 15 default views of
 * the original, the same views moved by yaw +7° and pitch +5° ("a slightly different view"), and
 * the views of a plane-defaced copy (src/verify/plane-deface.ts), and runs the face detector and
 * the recognition net on them. The skull-stripped control is rendered too.
 *
 * - Face score threshold: the highest at which a face is found on at least 90% of the frontal
 *   views (yaw 0, every pitch) of the heads with a full face (all but chris_t1, upper face only,
 *   and the CT quarter, lower face only). Why the frontal views and not all 15: see the printed
 *   figures and docs/face-check.md.
 * - Match distance: the 95th percentile of the distances between a view and its moved twin, for
 *   views where both show a face: a defaced view nearer its original than that is as similar as
 *   the same face from a slightly different angle.
 * - Rank-1 sanity: how often a moved view is nearer its own original than every other person's
 *   gallery descriptor at the same view.
 * - End to end: the verdict of every plane-defaced head against its original, and of the control.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { readVolume } from '../src/io/read-volume.js'
import { DEFAULT_VIEWS, renderSkinViews, skinThreshold, type RenderedView, type ViewAngle } from '../src/verify/render-surface.js'
import { planeDeface } from '../src/verify/plane-deface.js'
import { describeBox, descriptorDistance, detectFaces, inspectView, loadFaceModel, type FaceBox, type FaceModel } from '../src/verify/face-detector.js'
import { GALLERY_FORMAT, DEFAULT_GALLERY_PATH, serializeGallery, parseGallery, type FaceGallery, type GalleryHead } from '../src/verify/face-gallery.js'
import { faceVerdict, type DefacedObservation, type OriginalObservation } from '../src/verify/face-verdict.js'
import { PARTIAL_FACE, PERSON, realHeads, skullStrippedControl } from './real-volumes.js'

const { values } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' }, 'behind-nose': { type: 'string' } } })
const DATA = resolve(values.data ?? join(import.meta.dirname, '..', '..', 'shared', 'data'))
const OUT = resolve(values.out ?? DEFAULT_GALLERY_PATH)
/** Where the plane defacer cuts, in mm behind the nose tip; plane-deface.ts's default unless given. */
const BEHIND_NOSE_MM = values['behind-nose'] === undefined ? undefined : Number(values['behind-nose'])

// Heads with part of a face (PARTIAL_FACE) do not calibrate the threshold; scans of one person
// (PERSON) are never each other's decoys.
/** Rendered and reported, but kept out of the shipped gallery. */
const NOT_IN_GALLERY: Record<string, string> = {
  chris_t1: 'image licence CC BY-NC 4.0, not for an MIT package; and no face is found on it, so it is no use as a decoy',
}
/** Where the scans come from (shared/data/README.md); the gallery holds numbers derived from their renders. */
const LICENCES: Record<string, string> = {
  IXI: 'IXI dataset, CC BY-SA 3.0 (via CBICA/NiChart_Project)',
  T1_head_ext2: 'niivue/niivue-demo-images, BSD-2',
  T1w2mm: 'neurolabusc/allineate, public domain notice',
  Subj1: 'CBICA/NiChart_Project demo set, provenance undocumented',
  philips_adni_mprage: 'neurolabusc/dcm_qa_philips_enh, BSD-2',
  slicer_ctheadaxial_quarter: 'Slicer sample data, BSD-style',
}
const MOVE: ViewAngle = { yaw: 7, pitch: 5 }
const DETECTION_RATE = 0.9
const MATCH_PERCENTILE = 0.95
const FRONTAL = (v: ViewAngle) => v.yaw === 0
/** The negative control: a plane this close behind the nose tip takes off only the tip. */
const WEAK_DEFACE_MM = 15

interface Seen {
  score: number
  box?: FaceBox
  descriptor?: Float32Array
  descriptorBox?: FaceBox
}

interface HeadRecord {
  id: string
  person: string
  fullFace: boolean
  original: Array<Seen & { hitFraction: number }>
  moved: Seen[]
  defaced: DefacedRecord[]
  /** Only the nose tip taken off: the face must still be found. */
  weak: DefacedRecord[]
}

interface DefacedRecord {
  score: number
  box?: FaceBox
  hitFraction: number
  descriptorAtOriginal?: Float32Array
}

async function inspectAll(model: FaceModel, views: RenderedView[]): Promise<Seen[]> {
  const seen: Seen[] = []
  for (const view of views) {
    const { best, face } = await inspectView(model, view, 0)
    seen.push(face === undefined ? { score: best?.score ?? 0 } : { score: face.score, box: face.box, descriptor: face.descriptor, descriptorBox: face.descriptorBox })
  }
  return seen
}

async function inspectDefaced(model: FaceModel, views: RenderedView[], original: Seen[]): Promise<DefacedRecord[]> {
  const records: DefacedRecord[] = []
  for (const [i, view] of views.entries()) {
    const [best] = await detectFaces(model, view)
    const box = (original[i] as Seen).descriptorBox
    records.push({
      score: best?.score ?? 0,
      ...(best === undefined ? {} : { box: best.box }),
      hitFraction: view.hitFraction,
      ...(box === undefined ? {} : { descriptorAtOriginal: await describeBox(model, view, box) }),
    })
  }
  return records
}

const inputs = realHeads(DATA)
const controlPath = skullStrippedControl(DATA)

const model = await loadFaceModel()
const started = performance.now()
const heads: HeadRecord[] = []
for (const path of inputs) {
  const id = basename(path).replace(/\.nii(\.gz)?$/, '')
  const volume = await readVolume(path)
  const threshold = skinThreshold(volume)
  const originalViews = renderSkinViews(volume, { threshold })
  const movedViews = renderSkinViews(volume, { threshold, views: DEFAULT_VIEWS.map((v) => ({ yaw: v.yaw + MOVE.yaw, pitch: v.pitch + MOVE.pitch })) })
  const defacedViews = renderSkinViews(planeDeface(volume, { threshold, ...(BEHIND_NOSE_MM === undefined ? {} : { behindNoseMm: BEHIND_NOSE_MM }) }), { threshold })
  const original = (await inspectAll(model, originalViews)).map((s, i) => ({ ...s, hitFraction: (originalViews[i] as RenderedView).hitFraction }))
  const moved = await inspectAll(model, movedViews)
  const weakViews = renderSkinViews(planeDeface(volume, { threshold, behindNoseMm: WEAK_DEFACE_MM }), { threshold })
  const defaced = await inspectDefaced(model, defacedViews, original)
  const weak = await inspectDefaced(model, weakViews, original)
  heads.push({ id, person: PERSON[id] ?? id, fullFace: !(id in PARTIAL_FACE), original, moved, defaced, weak })
  process.stderr.write(`${id} `)
}
const controlVolume = await readVolume(controlPath)
const controlViews = renderSkinViews(controlVolume)
const control = (await inspectAll(model, controlViews)).map((s, i) => ({ ...s, hitFraction: (controlViews[i] as RenderedView).hitFraction }))
process.stderr.write(`control\n`)
const elapsedS = (performance.now() - started) / 1000

// ---- Threshold ----------------------------------------------------------------------------------

const views = DEFAULT_VIEWS
const full = heads.filter((h) => h.fullFace)
const floor2 = (x: number) => Math.floor(x * 100) / 100
/** The highest two-decimal threshold at which at least DETECTION_RATE of the scores pass. */
function thresholdFor(scores: number[]): number {
  const sorted = [...scores].sort((a, b) => a - b)
  return floor2(sorted[Math.floor((1 - DETECTION_RATE) * sorted.length)] as number)
}
const scoresOf = (h: HeadRecord, pick: (v: ViewAngle) => boolean) => h.original.filter((_, i) => pick(views[i] as ViewAngle)).map((s) => s.score)
const all = () => true
const faceScoreThreshold = thresholdFor(full.flatMap((h) => scoresOf(h, FRONTAL)))
const thresholdAllViews = thresholdFor(full.flatMap((h) => scoresOf(h, all)))
const rate = (scores: number[], t: number) => scores.filter((s) => s >= t).length / scores.length
const round = (x: number, digits = 3) => Number(x.toFixed(digits))

const perHead = heads.map((h) => ({
  id: h.id,
  fullFace: h.fullFace,
  frontalRate: round(rate(scoresOf(h, FRONTAL), faceScoreThreshold)),
  allViewsRate: round(rate(scoresOf(h, all), faceScoreThreshold)),
  bestScore: round(Math.max(...h.original.map((s) => s.score))),
}))
const perView = views.map((v, i) => ({ ...v, rate: round(rate(full.map((h) => (h.original[i] as Seen).score), faceScoreThreshold)) }))
const defacedScores = (pick: (v: ViewAngle) => boolean, hs = full) => hs.flatMap((h) => h.defaced.filter((_, i) => pick(views[i] as ViewAngle)).map((d) => d.score))
const controlScores = control.map((s) => s.score)

// ---- Gallery, match distance, rank-1 ------------------------------------------------------------

const gallery: FaceGallery = {
  format: GALLERY_FORMAT,
  builtFrom: {},
  calibration: { faceScoreThreshold, maxMatchDistance: 0 },
  heads: heads.filter((h) => !(h.id in NOT_IN_GALLERY)).map(
    (h): GalleryHead => ({
      id: h.id,
      person: h.person,
      views: h.original.flatMap((s, i) => (s.descriptor === undefined ? [] : [{ ...(views[i] as ViewAngle), score: s.score, descriptor: s.descriptor }])),
    }),
  ),
}
// Distances measured with the stored (quantised) gallery, as the verdict will see it.
const stored = parseGallery(serializeGallery(gallery))
const galleryEntry = (id: string, i: number) => stored.heads.find((h) => h.id === id)?.views.find((v) => v.yaw === views[i]?.yaw && v.pitch === views[i]?.pitch)

const movedDistances: number[] = []
let rank1 = 0
let rank1Views = 0
let rank1Loose = 0
let rank1LooseViews = 0
const nearestOthers: number[] = []
for (const h of heads) {
  h.original.forEach((o, i) => {
    const m = h.moved[i] as Seen
    if (o.descriptor === undefined || m.descriptor === undefined) return
    const own = descriptorDistance(m.descriptor, o.descriptor)
    let nearest = Infinity
    for (const other of stored.heads) {
      if (other.person === h.person) continue
      const entry = galleryEntry(other.id, i)
      if (entry !== undefined) nearest = Math.min(nearest, descriptorDistance(m.descriptor, entry.descriptor))
    }
    rank1LooseViews++
    if (own < nearest) rank1Loose++
    if (o.score < faceScoreThreshold || m.score < faceScoreThreshold) return
    movedDistances.push(own)
    nearestOthers.push(nearest)
    rank1Views++
    if (own < nearest) rank1++
  })
}
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number
const maxMatchDistance = round(percentile(movedDistances, MATCH_PERCENTILE), 2)
let differentHeads: number[] = []
for (const a of stored.heads) {
  for (const b of stored.heads) {
    if (a.id >= b.id || a.person === b.person) continue
    for (const va of a.views) {
      const vb = b.views.find((v) => v.yaw === va.yaw && v.pitch === va.pitch)
      if (vb !== undefined && va.score >= faceScoreThreshold && vb.score >= faceScoreThreshold) differentHeads.push(descriptorDistance(va.descriptor, vb.descriptor))
    }
  }
}
differentHeads = differentHeads.sort((a, b) => a - b)
/** Two scans of one person (T1 and FLAIR of Subj1; T1_head_ext2 and T1w2mm), same view, both with a face. */
const samePerson: number[] = []
for (const a of stored.heads) {
  for (const b of stored.heads) {
    if (a.id >= b.id || a.person !== b.person) continue
    for (const va of a.views) {
      const vb = b.views.find((v) => v.yaw === va.yaw && v.pitch === va.pitch)
      if (vb !== undefined && va.score >= faceScoreThreshold && vb.score >= faceScoreThreshold) samePerson.push(descriptorDistance(va.descriptor, vb.descriptor))
    }
  }
}

// ---- End to end: verdicts on the plane-defaced heads and the control ---------------------------
// The photo detector's verdicts alone: the render-face classifier has a calibration of its own
// (models/train/train_render_face.py), so here it never sees a face.
const DETECTOR_ONLY = { renderFace: 0 }
const detectorOnly = { faceScoreThreshold, renderFaceThreshold: Infinity, maxMatchDistance }

const observations = (h: { original: Array<Seen & { hitFraction: number }> }) =>
  h.original.map(
    (s, i): OriginalObservation => ({
      ...(views[i] as ViewAngle),
      hitFraction: s.hitFraction,
      score: s.score,
      ...DETECTOR_ONLY,
      ...(s.box === undefined ? {} : { box: s.box }),
      ...(s.score >= faceScoreThreshold && s.descriptor !== undefined ? { descriptor: s.descriptor, descriptorBox: s.descriptorBox as FaceBox } : {}),
    }),
  )
const defacedObservations = (records: DefacedRecord[], original: OriginalObservation[]) =>
  records.map(
    (d, i): DefacedObservation => ({
      ...(views[i] as ViewAngle),
      hitFraction: d.hitFraction,
      score: d.score,
      ...DETECTOR_ONLY,
      ...(d.box === undefined ? {} : { box: d.box }),
      ...((original[i] as OriginalObservation).descriptor !== undefined && d.descriptorAtOriginal !== undefined ? { descriptorAtOriginal: d.descriptorAtOriginal } : {}),
    }),
  )
const verdicts = heads.map((h) => {
  const original = observations(h)
  const defaced = defacedObservations(h.defaced, original)
  const gated = faceVerdict(original, defaced, stored, detectorOnly)
  const pure = faceVerdict(original, defaced, stored, { ...detectorOnly, maxMatchDistance: Infinity })
  const weak = faceVerdict(original, defacedObservations(h.weak, original), stored, detectorOnly)
  return {
    id: h.id,
    fullFace: h.fullFace,
    status: gated.status,
    facesLeft: gated.facesLeft.length,
    matched: gated.matched.length,
    rank1Only: pure.status,
    rank1OnlyMatched: pure.matched.length,
    weakStatus: weak.status,
    weakFacesLeft: weak.facesLeft.length,
    weakMatched: weak.matched.length,
  }
})
const controlVerdict = faceVerdict(observations({ original: control }), observations({ original: control }), stored, detectorOnly)
const count = (xs: Array<{ status: string }>, status: string) => xs.filter((x) => x.status === status).length
const countRank1 = (xs: Array<{ rank1Only: string }>, status: string) => xs.filter((x) => x.rank1Only === status).length
const fullVerdicts = verdicts.filter((v) => v.fullFace)

// ---- Write --------------------------------------------------------------------------------------

const calibration = {
  faceScoreThreshold,
  maxMatchDistance,
  measuredOn: `${full.length} heads with a full face (${full.map((h) => h.id).join(', ')}); ${heads.length - full.length} with part of a face (${Object.entries(PARTIAL_FACE).map(([k, v]) => `${k}: ${v}`).join('; ')}); control ${basename(controlPath)}`,
  thresholdRule: `highest two-decimal score at which a face is detected on >= ${DETECTION_RATE * 100}% of the frontal views (yaw 0, pitch -20/0/+20) of the full-face heads`,
  detectionRateAtThreshold: {
    frontalViews: round(rate(full.flatMap((h) => scoresOf(h, FRONTAL)), faceScoreThreshold)),
    allViews: round(rate(full.flatMap((h) => scoresOf(h, all)), faceScoreThreshold)),
    perView,
    movedFrontalViews: round(rate(full.flatMap((h) => h.moved.filter((_, i) => FRONTAL(views[i] as ViewAngle)).map((s) => s.score)), faceScoreThreshold)),
    movedAllViews: round(rate(full.flatMap((h) => h.moved.map((s) => s.score)), faceScoreThreshold)),
  },
  thresholdForAllViews: {
    threshold: thresholdAllViews,
    note: `a face on >= ${DETECTION_RATE * 100}% of all 15 original views needs this threshold; at it the detector also fires on the plane-defaced and control renders:`,
    defacedViewsWithAFace: round(rate(defacedScores(all), thresholdAllViews)),
    controlViewsWithAFace: round(rate(controlScores, thresholdAllViews)),
  },
  defacedViewsWithAFaceAtThreshold: { allViews: round(rate(defacedScores(all), faceScoreThreshold)), frontalViews: round(rate(defacedScores(FRONTAL), faceScoreThreshold)), bestScore: round(Math.max(...defacedScores(all))) },
  controlBestScore: round(Math.max(...controlScores)),
  matchRule: `rank-1 against the other people in the gallery at the same view, and distance to the original <= maxMatchDistance (the ${MATCH_PERCENTILE * 100}th percentile of the distance between a view and the same view moved by yaw +${MOVE.yaw} pitch +${MOVE.pitch}, where both show a face)`,
  movedViewDistance: { views: movedDistances.length, median: round(percentile(movedDistances, 0.5)), p95: round(percentile(movedDistances, 0.95)), max: round(Math.max(...movedDistances)) },
  differentHeadsDistance: { pairs: differentHeads.length, min: round(differentHeads[0] as number), p01: round(percentile(differentHeads, 0.01)), median: round(percentile(differentHeads, 0.5)) },
  samePersonOtherScanDistance: samePerson.map((d) => round(d)),
  rank1Sanity: {
    movedViewsWithFace: rank1Views,
    rank1Correct: rank1,
    rate: round(rank1 / rank1Views),
    medianNearestOther: round(percentile(nearestOthers, 0.5)),
    allViewsWithADescriptor: { views: rank1LooseViews, rank1Correct: rank1Loose, rate: round(rank1Loose / rank1LooseViews) },
  },
  planeDefaced: {
    method: `src/verify/plane-deface.ts: air in front of a coronal plane ${BEHIND_NOSE_MM ?? 90} mm behind the nose tip and below an axial plane 80 mm below the vertex`,
    fullFaceHeads: fullVerdicts.length,
    pass: count(fullVerdicts, 'PASS'),
    fail: count(fullVerdicts, 'FAIL'),
    rank1OnlyPass: countRank1(fullVerdicts, 'PASS'),
    rank1OnlyFail: countRank1(fullVerdicts, 'FAIL'),
    verdicts,
  },
  noseTipOnly: {
    method: `plane-deface.ts with the coronal plane ${WEAK_DEFACE_MM} mm behind the nose tip: the face stays, so every full-face head should FAIL`,
    fail: fullVerdicts.filter((v) => v.weakStatus === 'FAIL').length,
    failByMatchOnly: fullVerdicts.filter((v) => v.weakStatus === 'FAIL' && v.weakFacesLeft === 0).length,
    of: fullVerdicts.length,
  },
  control: { status: controlVerdict.status, reason: controlVerdict.reasons[0] },
  perHead,
}
gallery.builtFrom = {
  command: 'npx tsx scripts/build-face-gallery.ts',
  data: 'unface shared data (shared/data/README.md): IXI T1 heads (CC BY-SA 3.0), niivue and NiChart demo heads, dcm_qa_philips_enh MPRAGE, Slicer CTHeadAxial; only descriptors are stored, no images',
  heads: stored.heads.map((h) => h.id),
  notInGallery: NOT_IN_GALLERY,
  licences: LICENCES,
  views: `${views.length} default views of src/verify/render-surface.ts, 256x256, skin threshold from the histogram`,
  detector: `@vladmandic/face-api 1.7.15, ${model.detector === 'tiny' ? `Tiny Face Detector, input ${model.inputSize} px` : 'SSD MobileNet v1'}; 68-point landmarks; 128-D face recognition net, descriptor of the dlib-aligned box`,
  descriptorEncoding: 'int8 per value, value = byte * scale, base64',
  builtAt: new Date().toISOString().slice(0, 10),
  buildSeconds: round(elapsedS, 1),
}
gallery.calibration = calibration
await mkdir(dirname(OUT), { recursive: true })
const text = serializeGallery(gallery)
await writeFile(OUT, text)

// ---- Report -------------------------------------------------------------------------------------

const pct = (x: number) => `${(x * 100).toFixed(0)}%`
console.log(`wrote ${OUT} (${(text.length / 1024).toFixed(0)} KiB, ${stored.heads.reduce((n, h) => n + h.views.length, 0)} descriptors) in ${elapsedS.toFixed(0)} s`)
console.log(`\nface score threshold ${faceScoreThreshold} (>= ${pct(DETECTION_RATE)} of the frontal views of ${full.length} full-face heads)`)
console.log(`detection rate at ${faceScoreThreshold}: frontal views ${pct(calibration.detectionRateAtThreshold.frontalViews)}, all 15 views ${pct(calibration.detectionRateAtThreshold.allViews)}`)
console.log(`the same views moved by yaw +${MOVE.yaw} pitch +${MOVE.pitch}: frontal ${pct(calibration.detectionRateAtThreshold.movedFrontalViews)}, all 15 ${pct(calibration.detectionRateAtThreshold.movedAllViews)}`)
console.log(`per view (yaw/pitch: rate): ${perView.map((v) => `${v.yaw}/${v.pitch}: ${pct(v.rate)}`).join(', ')}`)
console.log(`\n| head | full face | frontal views | all 15 views | best score |\n|---|---|---|---|---|`)
for (const h of perHead) console.log(`| ${h.id} | ${h.fullFace ? 'yes' : 'no'} | ${pct(h.frontalRate)} | ${pct(h.allViewsRate)} | ${h.bestScore.toFixed(2)} |`)
console.log(`\nfor >= ${pct(DETECTION_RATE)} of all 15 views the threshold would be ${thresholdAllViews}: plane-defaced views with a face there ${pct(calibration.thresholdForAllViews.defacedViewsWithAFace)}, control views ${pct(calibration.thresholdForAllViews.controlViewsWithAFace)}`)
console.log(`plane-defaced views with a face at ${faceScoreThreshold}: all ${pct(calibration.defacedViewsWithAFaceAtThreshold.allViews)}, frontal ${pct(calibration.defacedViewsWithAFaceAtThreshold.frontalViews)} (best score ${calibration.defacedViewsWithAFaceAtThreshold.bestScore}); control best score ${calibration.controlBestScore}`)
console.log(`\nmoved view (yaw +${MOVE.yaw}, pitch +${MOVE.pitch}) to its original: median ${calibration.movedViewDistance.median}, p95 ${calibration.movedViewDistance.p95}, max ${calibration.movedViewDistance.max} (${movedDistances.length} views) -> match distance ${maxMatchDistance}`)
console.log(`different people, same view: min ${calibration.differentHeadsDistance.min}, 1st percentile ${calibration.differentHeadsDistance.p01}, median ${calibration.differentHeadsDistance.median} (${differentHeads.length} pairs)`)
console.log(`same person, other scan, same view: ${samePerson.map((d) => d.toFixed(3)).join(', ')}`)
console.log(`rank-1 sanity: ${rank1}/${rank1Views} moved views with a face nearer their own original than anyone else's (${pct(rank1 / rank1Views)}); all views with a descriptor ${rank1Loose}/${rank1LooseViews} (${pct(rank1Loose / rank1LooseViews)})`)
console.log(`\nplane-defaced full-face heads: PASS ${calibration.planeDefaced.pass}, FAIL ${calibration.planeDefaced.fail}; with pure rank-1 (no distance limit): PASS ${calibration.planeDefaced.rank1OnlyPass}, FAIL ${calibration.planeDefaced.rank1OnlyFail}`)
for (const v of verdicts) console.log(`  ${v.id}: ${v.status} (faces left ${v.facesLeft}, matched ${v.matched}; pure rank-1: ${v.rank1Only}, matched ${v.rank1OnlyMatched}; nose tip only: ${v.weakStatus}, faces left ${v.weakFacesLeft}, matched ${v.weakMatched})`)
console.log(`nose tip only (${WEAK_DEFACE_MM} mm): FAIL ${calibration.noseTipOnly.fail}/${calibration.noseTipOnly.of} full-face heads (${calibration.noseTipOnly.failByMatchOnly} of them only by the identity match)`)
console.log(`control: ${controlVerdict.status}: ${controlVerdict.reasons[0]}`)
