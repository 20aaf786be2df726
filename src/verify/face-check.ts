/**
 * The face check of the verify stage: the photo face detector and the render-face classifier run
 * on the renders of the original and of the defaced volume, and the verdict (face-verdict.ts) on
 * what they saw.
 *
 * It is arranged to be cheap: every view costs one detector pass (about 10 ms) and a share of one
 * batch of the classifier (a few ms a view); landmarks and the
 * descriptor (about 40 ms) are computed only for the original views that show a face, and the
 * defaced views are described only at those views' face boxes.
 */
import type { FaceModel } from './face-detector.js'
import { describeBox, detectFaces, inspectView } from './face-detector.js'
import type { FaceGallery } from './face-gallery.js'
import type { DefacedObservation, FaceVerdict, OriginalObservation, VerdictOptions, ViewObservation } from './face-verdict.js'
import { faceVerdict } from './face-verdict.js'
import type { RenderedView } from './render-surface.js'
import { renderFaceScores, RENDER_FACE_THRESHOLD, type RenderFaceModel } from './render-face.js'

export interface FaceCheckOptions extends Partial<VerdictOptions> {}

/** Detector score, box, and where it reaches the threshold the face's descriptor, for each original view. */
export async function observeOriginal(model: FaceModel, renderFace: RenderFaceModel, views: RenderedView[], faceScoreThreshold: number): Promise<OriginalObservation[]> {
  const detected: Detected<OriginalObservation>[] = []
  for (const view of views) {
    const base = { yaw: view.yaw, pitch: view.pitch, hitFraction: view.hitFraction }
    const { best, face } = await inspectView(model, view, faceScoreThreshold)
    if (face !== undefined) detected.push({ ...base, score: face.score, box: face.box, descriptor: face.descriptor, descriptorBox: face.descriptorBox })
    else detected.push({ ...base, score: best?.score ?? 0, ...(best === undefined ? {} : { box: best.box }) })
  }
  return withRenderFace(renderFace, views, detected)
}

/**
 * Detector score and box for each defaced view, and its descriptor at the original's face box
 * where the original (the same view of `original`) shows a face.
 */
export async function observeDefaced(model: FaceModel, renderFace: RenderFaceModel, views: RenderedView[], original: OriginalObservation[]): Promise<DefacedObservation[]> {
  if (views.length !== original.length) throw new Error(`${views.length} defaced views for ${original.length} original ones`)
  const detected: Detected<DefacedObservation>[] = []
  for (const [i, view] of views.entries()) detected.push(await detectDefacedView(model, view, original[i] as OriginalObservation))
  return withRenderFace(renderFace, views, detected)
}

/** An observation before the render-face classifier has seen its view (it sees them all in one batch). */
export type Detected<T extends ViewObservation> = Omit<T, 'renderFace'>

/** One view through the detector: its best score and box (all the faint look asks of a view). */
export async function detectView(model: FaceModel, view: RenderedView): Promise<Detected<ViewObservation>> {
  const [best] = await detectFaces(model, view)
  return { yaw: view.yaw, pitch: view.pitch, hitFraction: view.hitFraction, score: best?.score ?? 0, ...(best === undefined ? {} : { box: best.box }) }
}

/** One defaced view through the detector, and described at the original's face box where the same view of the original shows a face. */
export async function detectDefacedView(model: FaceModel, view: RenderedView, original: OriginalObservation): Promise<Detected<DefacedObservation>> {
  const observation: Detected<DefacedObservation> = await detectView(model, view)
  if (original.descriptorBox !== undefined) observation.descriptorAtOriginal = await describeBox(model, view, original.descriptorBox)
  return observation
}

/** The detector's observations of `views`, in the same order, completed with the classifier's probabilities. */
export async function withRenderFace<T extends ViewObservation>(renderFace: RenderFaceModel, views: RenderedView[], detected: Detected<T>[]): Promise<T[]> {
  const probabilities = await renderFaceScores(renderFace, views)
  return detected.map((observation, i) => ({ ...observation, renderFace: probabilities[i] as number }) as T)
}

/** The verdict's thresholds: those given, else the gallery's calibration and the classifier's own. */
export function calibratedOptions(gallery: FaceGallery, options: FaceCheckOptions = {}): VerdictOptions {
  return {
    ...options,
    faceScoreThreshold: options.faceScoreThreshold ?? gallery.calibration.faceScoreThreshold,
    renderFaceThreshold: options.renderFaceThreshold ?? RENDER_FACE_THRESHOLD,
    maxMatchDistance: options.maxMatchDistance ?? gallery.calibration.maxMatchDistance,
  }
}

/**
 * The verdict on a defaced volume's renders against its original's (the same views, in the same
 * order). Thresholds default to the gallery's calibration.
 */
export async function checkFace(
  model: FaceModel,
  renderFace: RenderFaceModel,
  originalViews: RenderedView[],
  defacedViews: RenderedView[],
  gallery: FaceGallery,
  options: FaceCheckOptions = {},
): Promise<FaceVerdict> {
  const verdictOptions = calibratedOptions(gallery, options)
  const original = await observeOriginal(model, renderFace, originalViews, verdictOptions.faceScoreThreshold)
  const defaced = await observeDefaced(model, renderFace, defacedViews, original)
  return faceVerdict(original, defaced, gallery, verdictOptions)
}
