import { describe, expect, it } from 'vitest'
import { faceVerdict, type DefacedObservation, type OriginalObservation, type VerdictOptions } from './face-verdict.js'
import type { GalleryHead } from './face-gallery.js'
import type { ViewAngle } from './render-surface.js'

const VIEWS: ViewAngle[] = [
  { yaw: 0, pitch: 20 },
  { yaw: 0, pitch: 0 },
  { yaw: 0, pitch: -20 },
]
const OPTIONS: VerdictOptions = { faceScoreThreshold: 0.6, renderFaceThreshold: 0.5, maxMatchDistance: 0.31 }
const BOX = { x: 40, y: 60, width: 170, height: 160 }

/** A descriptor: `base` on axis 0, and `offset` along `axis` (so distances are easy to read). */
function descriptor(base: number, axis = 1, offset = 0): Float32Array {
  const d = new Float32Array(128)
  d[0] = base
  d[axis] = (d[axis] as number) + offset
  return d
}
const FACE = descriptor(1)

/** Original views with these detector scores (and render-face probabilities, 0 unless given). */
function originals(scores: number[], hitFraction = 0.45, renderFace: number[] = []): OriginalObservation[] {
  return VIEWS.map((v, i) => {
    const score = scores[i] as number
    return { ...v, hitFraction, score, box: BOX, renderFace: renderFace[i] ?? 0, ...(score >= OPTIONS.faceScoreThreshold ? { descriptor: FACE, descriptorBox: BOX } : {}) }
  })
}

/** Defaced views: scores, and the descriptor at the original's face as FACE moved `distance` along axis 2. */
function defaced(scores: number[], distance: number | undefined, hitFraction = 0.45, renderFace: number[] = []): DefacedObservation[] {
  return VIEWS.map((v, i) => ({ ...v, hitFraction, score: scores[i] as number, renderFace: renderFace[i] ?? 0, ...(distance === undefined ? {} : { descriptorAtOriginal: descriptor(1, 2, distance) }) }))
}

/** A gallery head with the given descriptor at each of the given views. */
function head(id: string, views: Array<{ view: ViewAngle; descriptor: Float32Array }>, person = id): GalleryHead {
  return { id, person, views: views.map(({ view, descriptor }) => ({ ...view, score: 0.9, descriptor })) }
}
const everyView = (d: Float32Array) => VIEWS.map((view) => ({ view, descriptor: d }))
/** Strangers far from everything: at distance ~1 from FACE, and more from the defaced descriptors. */
const STRANGERS = { heads: [head('stranger-a', everyView(descriptor(1, 3, 1))), head('stranger-b', everyView(descriptor(1, 4, 1.2)))] }

describe('faceVerdict', () => {
  it('passes when no defaced view shows a face and none is identified, and reports scores and distances', () => {
    const verdict = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.2, 0], 0.5), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('PASS')
    expect(verdict.facesLeft).toEqual([])
    expect(verdict.matched).toEqual([])
    expect(verdict.reasons[0]).toMatch(/no defaced view shows a face/)
    expect(verdict.reasons[0]).toMatch(/none of the 3 view\(s\) compared with the original by identity is identified/)
    const front = verdict.views[1]
    expect(front).toMatchObject({ yaw: 0, pitch: 0, originalScore: 0.95, defacedScore: 0.2, originalFace: true, defacedFace: false, galleryHeads: 2, matched: false })
    expect(front?.ownDistance).toBeCloseTo(0.5, 5)
    // Nearest stranger: FACE + e3 against FACE + 0.5 e2.
    expect(front?.nearestOtherDistance).toBeCloseTo(Math.hypot(1, 0.5), 5)
    expect(front?.nearestOtherHead).toBe('stranger-a')
    expect(verdict.faceScoreThreshold).toBe(0.6)
    expect(verdict.maxMatchDistance).toBe(0.31)
  })

  it('fails when the faint look still shows a face, though no view at the skin level does', () => {
    const faint = (scores: number[], renderFace: number[] = []) => ({ threshold: 46, views: VIEWS.map((v, i) => ({ ...v, hitFraction: 0.5, score: scores[i] as number, renderFace: renderFace[i] ?? 0 })) })
    const passed = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.2, 0], 0.5), STRANGERS, OPTIONS, faint([0.2, 0.3, 0.1]))
    expect(passed.status).toBe('PASS')
    expect(passed.faint?.facesLeft).toEqual([])
    expect(passed.reasons[0]).toMatch(/nor any of the 3 rendered at the faint skin level \(best 0\.30 and 0\.00\)/)
    const failed = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.2, 0], 0.5), STRANGERS, OPTIONS, faint([0.2, 0.3, 0.78]))
    expect(failed.status).toBe('FAIL')
    expect(failed.facesLeft).toEqual([])
    expect(failed.faint?.facesLeft).toEqual([{ yaw: 0, pitch: -20 }])
    expect(failed.reasons).toEqual(['1 defaced view(s) rendered at the faint skin level (46.00) still show a face: yaw 0 pitch -20 (detector score 0.78, render-face probability 0.00)'])
    const classified = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.2, 0], 0.5), STRANGERS, OPTIONS, faint([0.2, 0.3, 0.1], [0, 0.93, 0]))
    expect(classified.status).toBe('FAIL')
    expect(classified.faint?.facesLeft).toEqual([{ yaw: 0, pitch: 0 }])
    // No face on the original's renders is no excuse: the faint look found one.
    const unseen = faceVerdict(originals([0.1, 0.2, 0.1]), defaced([0.1, 0.2, 0], undefined), STRANGERS, OPTIONS, faint([0.7, 0, 0]))
    expect(unseen.status).toBe('FAIL')
    expect(unseen.reasons).toEqual(['no original view shows a face, but 1 defaced view(s) rendered at the faint skin level (46.00) still show a face: yaw 0 pitch +20 (detector score 0.70, render-face probability 0.00)'])
  })

  it('fails, naming the views, when a defaced view still shows a face', () => {
    const verdict = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.72, 0.3], 0.5), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    expect(verdict.facesLeft).toEqual([{ yaw: 0, pitch: 0 }])
    expect(verdict.reasons).toHaveLength(1)
    expect(verdict.reasons[0]).toMatch(/1 defaced view\(s\) still show a face: yaw 0 pitch 0 \(detector score 0\.72, render-face probability 0\.00\)/)
  })

  it('fails when the render-face classifier sees a face the detector does not, as from the side', () => {
    const verdict = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0.1, 0.2, 0.3], 0.5, 0.45, [0.1, 0.2, 0.81]), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    expect(verdict.facesLeft).toEqual([{ yaw: 0, pitch: -20 }])
    expect(verdict.views[2]).toMatchObject({ defacedScore: 0.3, defacedRenderFace: 0.81, defacedFace: true })
    expect(verdict.reasons[0]).toMatch(/yaw 0 pitch -20 \(detector score 0\.30, render-face probability 0\.81\)/)
    const atThreshold = faceVerdict(originals([0.9, 0.95, 0.8]), defaced([0, 0, 0], 0.5, 0.45, [0.5, 0, 0]), STRANGERS, OPTIONS)
    expect(atThreshold.facesLeft).toEqual([{ yaw: 0, pitch: 20 }])
  })

  it('counts an original view the classifier alone calls a face: a face was there, so the verdict is PASS or FAIL, not NO-FACE', () => {
    const verdict = faceVerdict(originals([0.1, 0.2, 0.3], 0.45, [0.9, 0.1, 0]), defaced([0.1, 0.2, 0.1], undefined), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('PASS')
    expect(verdict.views[0]).toMatchObject({ originalFace: true, originalRenderFace: 0.9, matched: false, galleryHeads: 0 })
    expect(verdict.reasons[0]).toMatch(/best render-face probability 0\.00, threshold 0\.5/)
    // Without the detector's face there is no descriptor to compare.
    expect(verdict.reasons[0]).toMatch(/none of the 0 view\(s\) compared with the original by identity/)
    const none = faceVerdict(originals([0.1, 0.2, 0.3], 0.45, [0.4, 0.1, 0]), defaced([0.1, 0.2, 0.1], undefined), STRANGERS, OPTIONS)
    expect(none.status).toBe('NO-FACE')
    expect(none.reasons[0]).toMatch(/best render-face probability 0\.40, threshold 0\.5/)
  })

  it('counts a score exactly at the threshold as a face', () => {
    const verdict = faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0.6, 0, 0], 0.5), STRANGERS, OPTIONS)
    expect(verdict.facesLeft).toEqual([{ yaw: 0, pitch: 20 }])
  })

  it('fails when a defaced view is nearer its original than any other head and within the match distance', () => {
    const verdict = faceVerdict(originals([0.9, 0.95, 0.3]), defaced([0.1, 0.2, 0.1], 0.1), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    // The third original view shows no face, so it is not compared.
    expect(verdict.matched).toEqual([{ yaw: 0, pitch: 20 }, { yaw: 0, pitch: 0 }])
    expect(verdict.views[2]).toMatchObject({ originalFace: false, matched: false, galleryHeads: 0 })
    expect(verdict.views[2]?.ownDistance).toBeUndefined()
    expect(verdict.reasons[0]).toMatch(/2 defaced view\(s\) are still identified as the original: yaw 0 pitch \+20 \(distance 0\.100 to its original, 1\.005 to the nearest other head\)/)
  })

  it('does not match beyond the match distance, unless asked for pure rank-1', () => {
    const original = originals([0.9, 0.9, 0.9])
    const far = defaced([0.1, 0.1, 0.1], 0.4)
    expect(faceVerdict(original, far, STRANGERS, OPTIONS).status).toBe('PASS')
    const pure = faceVerdict(original, far, STRANGERS, { ...OPTIONS, maxMatchDistance: Infinity })
    expect(pure.status).toBe('FAIL')
    expect(pure.matched).toHaveLength(3)
  })

  it('does not match when another head is nearer than the original', () => {
    // The defaced descriptor is FACE + 0.2 e2; this head sits at FACE + 0.25 e2, 0.05 away.
    const lookalike = head('lookalike', everyView(descriptor(1, 2, 0.25)))
    const verdict = faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0, 0, 0], 0.2), { heads: [...STRANGERS.heads, lookalike] }, OPTIONS)
    expect(verdict.status).toBe('PASS')
    expect(verdict.views[0]?.nearestOtherHead).toBe('lookalike')
    expect(verdict.views[0]?.nearestOtherDistance).toBeCloseTo(0.05, 5)
  })

  it("leaves the input itself and its person's other scans out of the gallery", () => {
    const self = head('self', everyView(FACE), 'person-1')
    // Another scan of the same person, nearer the defaced descriptor than the original is.
    const sibling = head('sibling', everyView(descriptor(1, 2, 0.25)), 'person-1')
    const verdict = faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0, 0, 0], 0.2), { heads: [self, sibling, ...STRANGERS.heads] }, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    expect(verdict.views.every((v) => v.galleryHeads === 2 && v.nearestOtherHead === 'stranger-a')).toBe(true)
  })

  it('compares only gallery entries of the same view', () => {
    const frontOnly = head('front-only', [{ view: { yaw: 0, pitch: 0 }, descriptor: descriptor(1, 2, 0.25) }])
    const verdict = faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0, 0, 0], 0.2), { heads: [frontOnly] }, OPTIONS)
    expect(verdict.views.map((v) => v.galleryHeads)).toEqual([0, 1, 0])
    // With nobody else to compare at pitch +/-20, the distance alone decides.
    expect(verdict.matched).toEqual([{ yaw: 0, pitch: 20 }, { yaw: 0, pitch: -20 }])
  })

  it('says NO-FACE when no original view shows a face', () => {
    const verdict = faceVerdict(originals([0.1, 0.4, 0]), defaced([0.1, 0.3, 0], undefined), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('NO-FACE')
    expect(verdict.noFace).toBe('no-face-in-field-of-view')
    expect(verdict.reasons[0]).toMatch(/no original view shows a face \(best detector score 0\.40, threshold 0\.6; best render-face probability 0\.00, threshold 0\.5\)/)
    expect(verdict.views.map((v) => v.originalScore)).toEqual([0.1, 0.4, 0])
  })

  it('says NO-FACE, render failed, when the renders of the original show almost no skin', () => {
    const verdict = faceVerdict(originals([0, 0, 0], 0.001), defaced([0, 0, 0], undefined, 0.001), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('NO-FACE')
    expect(verdict.noFace).toBe('render-failed')
    expect(verdict.reasons[0]).toMatch(/almost no skin \(at most 0\.1% of the pixels\)/)
  })

  it('fails when a defaced view shows a face that no original view showed', () => {
    const verdict = faceVerdict(originals([0.1, 0.2, 0.3]), defaced([0.1, 0.65, 0], undefined), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    expect(verdict.facesLeft).toEqual([{ yaw: 0, pitch: 0 }])
  })

  it('fails when the defaced renders show no skin although the originals do', () => {
    const verdict = faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0, 0, 0], 0.8, 0), STRANGERS, OPTIONS)
    expect(verdict.status).toBe('FAIL')
    expect(verdict.reasons[0]).toMatch(/defaced volume show almost no skin/)
  })

  it('refuses views that do not pair up', () => {
    expect(() => faceVerdict(originals([0.9, 0.9, 0.9]), defaced([0, 0, 0], 0.5).slice(1), STRANGERS, OPTIONS)).toThrow(/3 original views but 2 defaced/)
    const turned = defaced([0, 0, 0], 0.5).map((v, i) => (i === 1 ? { ...v, yaw: 30 } : v))
    expect(() => faceVerdict(originals([0.9, 0.9, 0.9]), turned, STRANGERS, OPTIONS)).toThrow(/view 1 is yaw 0 pitch 0 in the original but yaw \+30 pitch 0/)
    expect(() => faceVerdict([], [], STRANGERS, OPTIONS)).toThrow(/no views/)
  })
})
