/**
 * The verify stage as the pipeline calls it: render the skin of the original and of the defaced
 * volume from the 15 default views, run the face check on both (face-check.ts), and decide
 * whether the defaced volume may be released.
 *
 * The volume to be released is also rendered at the faint skin level from FAINT_VIEWS, and a face
 * there fails it as a face at the check's own level does.
 *
 * Released: PASS, and NO-FACE when the original shows no face in the field of view and the
 * defacer left the volume as it was (nothing to remove, nothing removed). Not released: FAIL;
 * NO-FACE because the renders failed (nothing could be checked); and NO-FACE where the defacer
 * removed a region that no original view shows as a face (nothing confirms that what is left
 * cannot be recognised).
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { Volume } from '../io/volume.js'
import { calibratedOptions, detectDefacedView, detectView, observeOriginal, withRenderFace, type Detected } from './face-check.js'
import { loadFaceModel, type FaceModel, type FaceModelOptions } from './face-detector.js'
import { DEFAULT_GALLERY_PATH, parseGallery, type FaceGallery } from './face-gallery.js'
import { loadRenderFaceModel, RENDER_FACE_THRESHOLD, type RenderFaceModel } from './render-face.js'
import { faceVerdict, type DefacedObservation, type FaceStatus, type FaceVerdict, type FaintLook, type OriginalObservation, type ViewObservation } from './face-verdict.js'
import { DEFAULT_VIEWS, renderSkinLooks, renderSkinViews, skinLevels, skinThreshold, type RenderedView, type ViewAngle } from './render-surface.js'

export interface FaceCheck {
  model: FaceModel
  renderFace: RenderFaceModel
  gallery: FaceGallery
  /** What the report records: the networks and the gallery, by content. */
  identity: { name: string; sha256: string }
}

export interface LoadFaceCheckOptions extends FaceModelOptions {
  /** A gallery other than the one shipped in models/face-gallery.json. */
  galleryPath?: string
}

/** The networks and the gallery, loaded once per process and shared by every volume checked. */
export async function loadFaceCheck(options: LoadFaceCheckOptions = {}): Promise<FaceCheck> {
  const galleryPath = options.galleryPath ?? DEFAULT_GALLERY_PATH
  const galleryText = await readFile(galleryPath, 'utf8')
  const gallery = parseGallery(galleryText)
  const [model, renderFace] = await Promise.all([loadFaceModel(options), loadRenderFaceModel()])
  const require = createRequire(import.meta.url)
  const { version } = require('@vladmandic/face-api/package.json') as { version: string }
  const detector = model.detector === 'tiny' ? `tiny-face-detector@${model.inputSize}` : 'ssd-mobilenet-v1'
  return {
    model,
    renderFace,
    gallery,
    identity: {
      name: `face-api ${version} ${detector} + landmarks-68 + recognition-128; gallery ${gallery.heads.length} heads, threshold ${gallery.calibration.faceScoreThreshold}, match distance ${gallery.calibration.maxMatchDistance}; render-face classifier, threshold ${RENDER_FACE_THRESHOLD}`,
      sha256: createHash('sha256').update(`${detector}\0`).update(galleryText).update(`\0${renderFace.sha256}`).digest('hex'),
    },
  }
}

/** One view as the report shows it. */
export interface FaceViewCheck {
  yaw: number
  pitch: number
  /** Best detector score on the original's render; undefined when the detector saw no candidate. */
  originalScore?: number
  /** Best detector score on the defaced render; undefined when the detector saw no candidate. */
  defacedScore?: number
  /** The render-face classifier's probability of a face on the original's render and on the defaced one. */
  originalRenderFace: number
  defacedRenderFace: number
  /** Descriptor distance, defaced to original, at the original's face. */
  distanceToOriginal?: number
  /** Smallest distance from the defaced descriptor to another head's in the gallery. */
  distanceToGallery?: number
  /** The defaced render is identified as its original. */
  identified: boolean
  /** The detector's score or the classifier's probability reaches its threshold: a face is there. */
  originalFace: boolean
  defacedFace: boolean
}

/** One view of the faint look as the report shows it. */
export interface FaintViewCheck {
  yaw: number
  pitch: number
  /** Best detector score; undefined when the detector saw no candidate. */
  defacedScore?: number
  defacedRenderFace: number
  defacedFace: boolean
}

/**
 * The faint look's views: the frontal column and the two raised ±30° views, where the originals
 * show a face most often (docs/face-check.md). The five cost about 0.15 s, rendering included.
 */
export const FAINT_VIEWS: ViewAngle[] = [
  { yaw: 0, pitch: 20 },
  { yaw: -30, pitch: 20 },
  { yaw: 30, pitch: 20 },
  { yaw: 0, pitch: 0 },
  { yaw: 0, pitch: -20 },
]

export interface FaceVerification {
  verdict: FaceStatus
  /** May the defaced volume be written out? */
  release: boolean
  reasons: string[]
  views: FaceViewCheck[]
  /** The released volume (defaced, or the original left as it was) at the faint skin level. */
  faint: { threshold: number; views: FaintViewCheck[] }
  /** The renders, original and defaced, in DEFAULT_VIEWS order, for the report's montage. */
  before: RenderedView[]
  after: RenderedView[]
  /** Everything the verdict saw. */
  detail: FaceVerdict
  /** Where the check's time went (it may have run beside the other stages); the faint look counts with the defaced renders and detections. */
  timingsMs: { renderOriginal: number; detectOriginal: number; renderDefaced: number; detectDefaced: number }
}

/**
 * Both volumes are rendered with the skin threshold of the original taken from its histogram,
 * as in the calibration (scripts/build-face-gallery.ts), so that the renders differ only where
 * the voxels do. (A threshold from the model's head mask would make the renders differ from
 * those the gallery was calibrated on.)
 */
export function renderBeforeAfter(original: Volume, defaced: Volume): { before: RenderedView[]; after: RenderedView[] } {
  const threshold = skinThreshold(original)
  const before = renderSkinViews(original, { threshold })
  return { before, after: defaced === original ? before : renderSkinViews(defaced, { threshold }) }
}

/** What the check saw on the original: its renders and the detector's findings on them. */
export interface OriginalSeen {
  original: Volume
  threshold: number
  faintThreshold: number
  before: RenderedView[]
  observations: OriginalObservation[]
  timingsMs: { render: number; detect: number }
}

/** The original's skin level and faint level (skinLevels): both volumes are rendered at them. */
export interface CheckLevels {
  skin: number
  faint: number
}

/** The first half of the check, which needs only the original and so can run while the face is being removed. */
export async function observeOriginalVolume(original: Volume, levels: CheckLevels, check: FaceCheck): Promise<OriginalSeen> {
  const start = performance.now()
  const { skin: threshold, faint: faintThreshold } = levels
  const before = renderSkinViews(original, { threshold })
  const rendered = performance.now()
  const observations = await observeOriginal(check.model, check.renderFace, before, check.gallery.calibration.faceScoreThreshold)
  return { original, threshold, faintThreshold, before, observations, timingsMs: { render: Math.round(rendered - start), detect: Math.round(performance.now() - rendered) } }
}

/**
 * Renders the volume to be released at the original's two levels: the 15 default views at the
 * skin level (look 0) and FAINT_VIEWS at the faint level (look 1), one render grid for both.
 * `onView` gets each view as soon as it is rendered.
 */
export function renderReleased(volume: Volume, levels: CheckLevels, onView?: (look: number, view: RenderedView) => void): { after: RenderedView[]; faint: RenderedView[] } {
  const looks = [
    { threshold: levels.skin, views: DEFAULT_VIEWS },
    { threshold: levels.faint, views: FAINT_VIEWS },
  ]
  const [after, faint] = renderSkinLooks(volume, looks, onView === undefined ? {} : { onView }) as [RenderedView[], RenderedView[]]
  return { after, faint }
}

/** The released volume's renders, and what the detector saw on each (the classifier sees them together, in judgeReleased). */
interface ReleasedSeen {
  after: RenderedView[]
  faint: RenderedView[]
  afterDetected: Detected<DefacedObservation>[]
  faintDetected: Detected<ViewObservation>[]
  /** Whether the defacer changed the volume (false: the original is released as it was). */
  changed: boolean
  timingsMs: { render: number; detect: number }
}

/** The second half: the defaced volume's renders against the original's. `defaced` undefined: the volume was left unchanged. */
export async function verifyAgainstOriginal(seen: OriginalSeen, defaced: Volume | undefined, check: FaceCheck): Promise<FaceVerification> {
  const arriving = new ArrivingRenders(Promise.resolve(seen), Promise.resolve(check))
  const start = performance.now()
  if (defaced === undefined) {
    // The original is released as it was: its renders at the skin level are already made.
    for (const view of seen.before) arriving.add(0, view)
    for (const view of renderSkinViews(seen.original, { threshold: seen.faintThreshold, views: FAINT_VIEWS })) arriving.add(1, view)
  } else {
    renderReleased(defaced, { skin: seen.threshold, faint: seen.faintThreshold }, (look, view) => arriving.add(look, view))
  }
  return arriving.finish(performance.now() - start, defaced !== undefined)
}

/**
 * The second half, view by view: each render of the released volume goes through the detector as
 * it arrives, so that when another thread renders them (renderReleased's onView) detection
 * overlaps the rendering of the next; the verdict follows the last.
 */
export class ArrivingRenders {
  private readonly after: RenderedView[] = []
  private readonly faint: RenderedView[] = []
  private readonly afterDetected: Detected<DefacedObservation>[] = []
  private readonly faintDetected: Detected<ViewObservation>[] = []
  private detecting: Promise<void> = Promise.resolve()
  private detectMs = 0

  /** `seen`: the first half, for the original (it needs `check`, loaded). */
  constructor(
    private readonly seen: Promise<OriginalSeen>,
    private readonly check: Promise<FaceCheck>,
  ) {}

  add(look: number, view: RenderedView): void {
    const index = (look === 0 ? this.after : this.faint).push(view) - 1
    this.detecting = this.detecting.then(async () => {
      const [seen, check] = await Promise.all([this.seen, this.check])
      const start = performance.now()
      if (look === 0) this.afterDetected[index] = await detectDefacedView(check.model, view, seen.observations[index] as OriginalObservation)
      else this.faintDetected[index] = await detectView(check.model, view)
      this.detectMs += performance.now() - start
    })
    // A failure is reported by finish; until then it must not count as unhandled.
    this.detecting.catch(() => undefined)
  }

  /**
   * The verdict, once every view has come. `renderMs`: what the rendering took on its thread;
   * `changed`: whether the defacer changed the volume (false: the original is released as it was).
   */
  async finish(renderMs: number, changed: boolean): Promise<FaceVerification> {
    await this.detecting
    const [seen, check] = await Promise.all([this.seen, this.check])
    if (this.after.length !== DEFAULT_VIEWS.length || this.faint.length !== FAINT_VIEWS.length) {
      throw new Error(`${this.after.length} defaced and ${this.faint.length} faint renders arrived, not ${DEFAULT_VIEWS.length} and ${FAINT_VIEWS.length}`)
    }
    const timingsMs = { render: Math.round(renderMs), detect: Math.round(this.detectMs) }
    return judgeReleased(seen, { after: this.after, faint: this.faint, afterDetected: this.afterDetected, faintDetected: this.faintDetected, changed, timingsMs }, check)
  }
}

async function judgeReleased(seen: OriginalSeen, released: ReleasedSeen, check: FaceCheck): Promise<FaceVerification> {
  const start = performance.now()
  const observations = await withRenderFace<DefacedObservation>(check.renderFace, released.after, released.afterDetected)
  const faint: FaintLook = { threshold: seen.faintThreshold, views: await withRenderFace<ViewObservation>(check.renderFace, released.faint, released.faintDetected) }
  const detail = faceVerdict(seen.observations, observations, check.gallery, calibratedOptions(check.gallery), faint)
  const noFaceSeen = detail.status === 'NO-FACE' && detail.noFace === 'no-face-in-field-of-view'
  const release = detail.status === 'PASS' || (noFaceSeen && !released.changed)
  const reasons =
    noFaceSeen && released.changed
      ? [...detail.reasons, 'but the defacer removed a region the segmentation calls face, so no render confirms that what is left cannot be recognised (a partial face, or a scan the renderer does not show well): withheld']
      : detail.reasons
  // A score of 0 means the detector had no candidate at all; a distance is absent where there was no face to compare.
  const score = (key: string, value: number) => (value > 0 ? { [key]: value } : {})
  const distance = (key: string, value: number | undefined) => (value === undefined || !Number.isFinite(value) ? {} : { [key]: value })
  const views = detail.views.map(
    (v): FaceViewCheck => ({
      yaw: v.yaw,
      pitch: v.pitch,
      ...score('originalScore', v.originalScore),
      ...score('defacedScore', v.defacedScore),
      originalRenderFace: v.originalRenderFace,
      defacedRenderFace: v.defacedRenderFace,
      ...distance('distanceToOriginal', v.ownDistance),
      ...distance('distanceToGallery', v.nearestOtherDistance),
      identified: v.matched,
      originalFace: v.originalFace,
      defacedFace: v.defacedFace,
    }),
  )
  // Which faint views show a face is the verdict's to say, as it is for the views above.
  const faintFaces = detail.faint?.facesLeft ?? []
  const faintChecks = faint.views.map(
    (v): FaintViewCheck => ({ yaw: v.yaw, pitch: v.pitch, ...score('defacedScore', v.score), defacedRenderFace: v.renderFace, defacedFace: faintFaces.some((f) => f.yaw === v.yaw && f.pitch === v.pitch) }),
  )
  const timingsMs = {
    renderOriginal: seen.timingsMs.render,
    detectOriginal: seen.timingsMs.detect,
    renderDefaced: released.timingsMs.render,
    detectDefaced: released.timingsMs.detect + Math.round(performance.now() - start),
  }
  return { verdict: detail.status, release, reasons, views, faint: { threshold: faint.threshold, views: faintChecks }, before: seen.before, after: released.after, detail, timingsMs }
}

export async function verifyFaceRemoved(original: Volume, defaced: Volume, check: FaceCheck): Promise<FaceVerification> {
  return verifyAgainstOriginal(await observeOriginalVolume(original, skinLevels(original), check), defaced === original ? undefined : defaced, check)
}
