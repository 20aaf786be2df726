/**
 * The face check's verdict, from what the photo face detector and the render-face classifier saw
 * on the renders of the original and of the defaced volume (the same view angles). Pure: no
 * models, no files.
 *
 * A view shows a face when either says so: the detector (score at least faceScoreThreshold) finds
 * faces on the frontal renders only, the classifier (render-face.ts) from the side as well.
 *
 * - PASS: no defaced view shows a face (nor, where a faint look was taken, any view of it at the
 *   faint skin level), and no defaced view is identified, i.e. matched to its original (rank-1
 *   against the gallery, within the match distance: see viewMatch).
 * - FAIL: anything else, with the views that still show a face and the views that are matched.
 *   Also when the defaced renders show no skin although the originals do (nothing was checked),
 *   or when a defaced view shows a face although no original view did.
 * - NO-FACE: no original view shows a face (and no defaced one, faint or not): there is no face in the field of
 *   view, or the renders failed (almost no skin met by the rays).
 */
import type { FaceBox } from './face-detector.js'
import { descriptorDistance } from './face-detector.js'
import type { FaceGallery } from './face-gallery.js'
import { viewCaption, type ViewAngle } from './render-surface.js'

/** What the detector saw on one render. */
export interface ViewObservation extends ViewAngle {
  /** The render's fraction of pixels showing skin. */
  hitFraction: number
  /** The best detection's score; 0 when there was none. */
  score: number
  /** The best detection's box. */
  box?: FaceBox
  /** The render-face classifier's probability that the render shows a face. */
  renderFace: number
}

export interface OriginalObservation extends ViewObservation {
  /** The face's descriptor, when the view shows a face. */
  descriptor?: Float32Array
  /** The landmark-aligned box the descriptor was taken from. */
  descriptorBox?: FaceBox
}

export interface DefacedObservation extends ViewObservation {
  /** The descriptor of the defaced render inside the original's descriptorBox, where the original shows a face. */
  descriptorAtOriginal?: Float32Array
}

export interface VerdictOptions {
  /** Detector score at or above which a view shows a face. */
  faceScoreThreshold: number
  /** Render-face probability at or above which a view shows a face. */
  renderFaceThreshold: number
  /** A defaced view farther than this from its original is never matched; Infinity for pure rank-1. */
  maxMatchDistance: number
  /** Renders with less skin than this fraction of their pixels count as failed (default 0.02). */
  minHitFraction?: number
  /**
   * Gallery heads whose descriptor at a view lies this close to the original's are the input
   * itself (default 0.05); they and the other scans of their person are left out.
   */
  selfDistance?: number
}

export type FaceStatus = 'PASS' | 'FAIL' | 'NO-FACE'

/**
 * The released volume rendered again at the faint skin level (skinLevels in render-surface.ts),
 * from a few of the views: what is left of a face may show only there.
 */
export interface FaintLook {
  /** The real intensity the views were rendered at. */
  threshold: number
  views: ViewObservation[]
}

export interface ViewVerdict extends ViewAngle {
  originalScore: number
  defacedScore: number
  originalRenderFace: number
  defacedRenderFace: number
  originalHitFraction: number
  defacedHitFraction: number
  /** The original view shows a face. */
  originalFace: boolean
  /** The defaced view still shows a face. */
  defacedFace: boolean
  /** Distance from the defaced descriptor (at the original's face) to the original's. */
  ownDistance?: number
  /** Distance from the defaced descriptor to the nearest other head's in the gallery, and which. */
  nearestOtherDistance?: number
  nearestOtherHead?: string
  /** Gallery heads compared at this view. */
  galleryHeads: number
  /** The defaced view is identified as its original. */
  matched: boolean
}

export interface FaceVerdict {
  status: FaceStatus
  /** One line each, for people. */
  reasons: string[]
  /** Why there is no face to check, with NO-FACE. */
  noFace?: 'no-face-in-field-of-view' | 'render-failed'
  /** Views where the defaced render still shows a face. */
  facesLeft: ViewAngle[]
  /** Views where the defaced render is identified as its original. */
  matched: ViewAngle[]
  views: ViewVerdict[]
  faceScoreThreshold: number
  renderFaceThreshold: number
  maxMatchDistance: number
  /** The faint look, where one was taken, and the views where it still shows a face. */
  faint?: FaintLook & { facesLeft: ViewAngle[] }
}

const DEFAULT_MIN_HIT_FRACTION = 0.02
const DEFAULT_SELF_DISTANCE = 0.05

export function faceVerdict(original: OriginalObservation[], defaced: DefacedObservation[], gallery: Pick<FaceGallery, 'heads'>, options: VerdictOptions, faint?: FaintLook): FaceVerdict {
  const { faceScoreThreshold: threshold, renderFaceThreshold, maxMatchDistance } = options
  const showsFace = (v: ViewObservation) => v.score >= threshold || v.renderFace >= renderFaceThreshold
  const minHit = options.minHitFraction ?? DEFAULT_MIN_HIT_FRACTION
  const selfDistance = options.selfDistance ?? DEFAULT_SELF_DISTANCE
  if (original.length !== defaced.length) throw new Error(`${original.length} original views but ${defaced.length} defaced ones`)
  if (original.length === 0) throw new Error('no views to judge')
  original.forEach((o, i) => {
    const d = defaced[i] as DefacedObservation
    if (o.yaw !== d.yaw || o.pitch !== d.pitch) throw new Error(`view ${i} is ${viewCaption(o)} in the original but ${viewCaption(d)} in the defaced renders`)
  })

  const excluded = selfHeads(original, gallery, selfDistance)
  const views: ViewVerdict[] = original.map((o, i) => {
    const d = defaced[i] as DefacedObservation
    const view: ViewVerdict = {
      yaw: o.yaw,
      pitch: o.pitch,
      originalScore: o.score,
      defacedScore: d.score,
      originalRenderFace: o.renderFace,
      defacedRenderFace: d.renderFace,
      originalHitFraction: o.hitFraction,
      defacedHitFraction: d.hitFraction,
      originalFace: showsFace(o),
      defacedFace: showsFace(d),
      galleryHeads: 0,
      matched: false,
    }
    if (view.originalFace && o.descriptor !== undefined && d.descriptorAtOriginal !== undefined) {
      Object.assign(view, viewMatch(o, d.descriptorAtOriginal, gallery, excluded, maxMatchDistance))
    }
    return view
  })

  const facesLeft = views.filter((v) => v.defacedFace).map(({ yaw, pitch }) => ({ yaw, pitch }))
  const matched = views.filter((v) => v.matched).map(({ yaw, pitch }) => ({ yaw, pitch }))
  const faintFaces = faint?.views.filter(showsFace) ?? []
  const faintReason = `${faintFaces.length} defaced view(s) rendered at the faint skin level (${faint?.threshold.toPrecision(4)}) still show a face: ${faintFaces.map((v) => `${viewCaption(v)} (${scores(v.score, v.renderFace)})`).join(', ')}`
  const result = {
    facesLeft,
    matched,
    views,
    faceScoreThreshold: threshold,
    renderFaceThreshold,
    maxMatchDistance,
    ...(faint === undefined ? {} : { faint: { ...faint, facesLeft: faintFaces.map(({ yaw, pitch }) => ({ yaw, pitch })) } }),
  }
  const bestOriginal = Math.max(...views.map((v) => v.originalScore))
  const bestOriginalRenderFace = Math.max(...views.map((v) => v.originalRenderFace))
  const originalHit = Math.max(...views.map((v) => v.originalHitFraction))
  const defacedHit = Math.max(...views.map((v) => v.defacedHitFraction))

  if (!views.some((v) => v.originalFace)) {
    if (facesLeft.length > 0 || faintFaces.length > 0) {
      const reasons = facesLeft.length > 0 ? [`no original view shows a face, but ${facesLeft.length} defaced view(s) do: ${describeDefaced(views.filter((v) => v.defacedFace))}`] : []
      return { ...result, status: 'FAIL', reasons: faintFaces.length > 0 ? [...reasons, `no original view shows a face, but ${faintReason}`] : reasons }
    }
    if (originalHit < minHit) {
      return { ...result, status: 'NO-FACE', noFace: 'render-failed', reasons: [`the renders of the original show almost no skin (at most ${percent(originalHit)} of the pixels): the skin threshold or the volume is wrong`] }
    }
    return { ...result, status: 'NO-FACE', noFace: 'no-face-in-field-of-view', reasons: [`no original view shows a face (best detector score ${bestOriginal.toFixed(2)}, threshold ${threshold}; best render-face probability ${bestOriginalRenderFace.toFixed(2)}, threshold ${renderFaceThreshold})`] }
  }

  const reasons: string[] = []
  if (defacedHit < minHit) reasons.push(`the renders of the defaced volume show almost no skin (at most ${percent(defacedHit)} of the pixels), so nothing could be checked`)
  if (facesLeft.length > 0) reasons.push(`${facesLeft.length} defaced view(s) still show a face: ${describeDefaced(views.filter((v) => v.defacedFace))}`)
  if (faintFaces.length > 0) reasons.push(faintReason)
  if (matched.length > 0) {
    const list = views
      .filter((v) => v.matched)
      .map((v) => `${viewCaption(v)} (distance ${fixed(v.ownDistance)} to its original, ${fixed(v.nearestOtherDistance)} to the nearest other head)`)
    reasons.push(`${matched.length} defaced view(s) are still identified as the original: ${list.join(', ')}`)
  }
  if (reasons.length > 0) return { ...result, status: 'FAIL', reasons }
  // Identity is compared where the detector found the original's face (its landmarks place the descriptor).
  const compared = views.filter((v) => v.ownDistance !== undefined)
  return {
    ...result,
    status: 'PASS',
    reasons: [
      `no defaced view shows a face (best detector score ${Math.max(...views.map((v) => v.defacedScore)).toFixed(2)}, threshold ${threshold}; best render-face probability ${Math.max(...views.map((v) => v.defacedRenderFace)).toFixed(2)}, threshold ${renderFaceThreshold})` +
        (faint === undefined
          ? ''
          : `, nor any of the ${faint.views.length} rendered at the faint skin level (best ${Math.max(0, ...faint.views.map((v) => v.score)).toFixed(2)} and ${Math.max(0, ...faint.views.map((v) => v.renderFace)).toFixed(2)})`) +
        `; none of the ${compared.length} view(s) compared with the original by identity is identified`,
    ],
  }
}

/**
 * Rank-1 identification of one defaced view: matched when its descriptor is nearer its own
 * original's than every other gallery head's at the same view, and within maxMatchDistance.
 */
function viewMatch(
  original: OriginalObservation,
  descriptor: Float32Array,
  gallery: Pick<FaceGallery, 'heads'>,
  excluded: Set<string>,
  maxMatchDistance: number,
): Pick<ViewVerdict, 'ownDistance' | 'nearestOtherDistance' | 'nearestOtherHead' | 'galleryHeads' | 'matched'> {
  const ownDistance = descriptorDistance(descriptor, original.descriptor as Float32Array)
  let nearestOtherDistance = Infinity
  let nearestOtherHead: string | undefined
  let galleryHeads = 0
  for (const head of gallery.heads) {
    if (excluded.has(head.id)) continue
    const entry = head.views.find((v) => v.yaw === original.yaw && v.pitch === original.pitch)
    if (entry === undefined) continue
    galleryHeads++
    const distance = descriptorDistance(descriptor, entry.descriptor)
    if (distance < nearestOtherDistance) {
      nearestOtherDistance = distance
      nearestOtherHead = head.id
    }
  }
  const matched = ownDistance < nearestOtherDistance && ownDistance <= maxMatchDistance
  return {
    ownDistance,
    ...(nearestOtherHead === undefined ? {} : { nearestOtherDistance, nearestOtherHead }),
    galleryHeads,
    matched,
  }
}

/**
 * The gallery heads that are the input itself (a descriptor, at some view, within selfDistance of
 * the original's at that view) and every other scan of their people.
 */
function selfHeads(original: OriginalObservation[], gallery: Pick<FaceGallery, 'heads'>, selfDistance: number): Set<string> {
  const people = new Set<string>()
  for (const head of gallery.heads) {
    const isSelf = head.views.some((entry) => {
      const o = original.find((v) => v.yaw === entry.yaw && v.pitch === entry.pitch)
      return o?.descriptor !== undefined && descriptorDistance(o.descriptor, entry.descriptor) <= selfDistance
    })
    if (isSelf) people.add(head.person)
  }
  return new Set(gallery.heads.filter((h) => people.has(h.person)).map((h) => h.id))
}

function describeDefaced(views: ViewVerdict[]): string {
  return views.map((v) => `${viewCaption(v)} (${scores(v.defacedScore, v.defacedRenderFace)})`).join(', ')
}

function scores(detector: number, renderFace: number): string {
  return `detector score ${detector.toFixed(2)}, render-face probability ${renderFace.toFixed(2)}`
}

function fixed(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(3)
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`
}
