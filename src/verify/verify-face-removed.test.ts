import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { readVolume } from '../io/read-volume.js'
import { withVoxels, type Volume } from '../io/volume.js'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'
import { planeDeface } from './plane-deface.js'
import { DEFAULT_VIEWS, skinLevels } from './render-surface.js'
import { RENDER_FACE_THRESHOLD } from './render-face.js'
import { ArrivingRenders, FAINT_VIEWS, loadFaceCheck, observeOriginalVolume, renderReleased, verifyAgainstOriginal, verifyFaceRemoved, type FaceCheck } from './verify-face-removed.js'

const SAMPLE = join(import.meta.dirname, '..', '..', 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz')

let check: FaceCheck
let sample: Volume

beforeAll(async () => {
  ;[check, sample] = await Promise.all([loadFaceCheck(), readVolume(SAMPLE)])
})

describe('verifyFaceRemoved on a real head (the bundled sample)', () => {
  it('names the networks and the gallery it checks with', () => {
    expect(check.identity.name).toMatch(/^face-api 1\.7\.15 tiny-face-detector@160 .*gallery 20 heads.*; render-face classifier, threshold 0\.5$/)
    expect(check.identity.sha256).toMatch(/^[0-9a-f]{64}$/)
  })

  it('fails, and keeps the volume back, when the face was not removed', async () => {
    const result = await verifyFaceRemoved(sample, sample, check)
    expect(result.verdict).toBe('FAIL')
    expect(result.release).toBe(false)
    expect(result.detail.facesLeft).toContainEqual({ yaw: 0, pitch: 0 })
    // The same render is its own original: distance 0, identified.
    const front = result.views.find((v) => v.yaw === 0 && v.pitch === 0)
    expect(front).toMatchObject({ originalFace: true, defacedFace: true, identified: true })
    expect(front?.distanceToOriginal).toBeLessThan(1e-4)
    expect(front?.distanceToGallery).toBeGreaterThan(0.3)
    expect(result.reasons.join(' ')).toMatch(/still show a face/)
  })

  it('passes a plane-defaced copy, with a score for every view and distances where the original had a face', async () => {
    const result = await verifyFaceRemoved(sample, planeDeface(sample), check)
    expect(result.verdict, result.reasons.join('; ')).toBe('PASS')
    expect(result.release).toBe(true)
    expect(result.before).toHaveLength(15)
    expect(result.after).toHaveLength(15)
    expect(result.views.map(({ yaw, pitch }) => ({ yaw, pitch }))).toEqual(DEFAULT_VIEWS)
    // The render-face classifier sees the face from every view; the photo detector, whose faces
    // are the ones compared by descriptor, on a few frontal ones.
    expect(result.views.every((v) => v.originalFace && v.originalRenderFace >= RENDER_FACE_THRESHOLD && v.defacedRenderFace < RENDER_FACE_THRESHOLD)).toBe(true)
    const detected = result.views.filter((v) => (v.originalScore ?? 0) >= check.gallery.calibration.faceScoreThreshold)
    expect(detected.length).toBeGreaterThanOrEqual(2)
    for (const v of detected) {
      expect(v.identified).toBe(false)
      expect(v.defacedFace).toBe(false)
      expect(v.distanceToOriginal).toBeGreaterThan(check.gallery.calibration.maxMatchDistance)
      expect(v.distanceToGallery).toBeGreaterThan(0)
    }
    for (const v of result.views.filter((v) => !detected.includes(v))) expect(v.distanceToOriginal).toBeUndefined()
    expect(result.detail.views.every((v) => v.defacedScore < check.gallery.calibration.faceScoreThreshold)).toBe(true)
    expect(result.faint.views.map(({ yaw, pitch }) => ({ yaw, pitch }))).toEqual(FAINT_VIEWS)
    expect(result.faint.views.every((v) => !v.defacedFace)).toBe(true)
  })

  it('fails a copy with only the nose tip cut off, the face still plain from the side', async () => {
    const result = await verifyFaceRemoved(sample, planeDeface(sample, { behindNoseMm: 15 }), check)
    expect(result.verdict).toBe('FAIL')
    expect(result.release).toBe(false)
    // From ±60° only the classifier sees faces; there it still sees this one.
    const sides = result.views.filter((v) => Math.abs(v.yaw) === 60)
    expect(sides).toHaveLength(6)
    expect(sides.every((v) => v.defacedFace && v.defacedRenderFace >= RENDER_FACE_THRESHOLD)).toBe(true)
  })

  it('reaches the same verdict when the defaced renders arrive one at a time from another thread', async () => {
    const levels = skinLevels(sample)
    const defaced = planeDeface(sample)
    const seen = observeOriginalVolume(sample, levels, check)
    const direct = await verifyAgainstOriginal(await seen, defaced, check)
    const arriving = new ArrivingRenders(seen, Promise.resolve(check))
    renderReleased(defaced, levels, (look, view) => arriving.add(look, view))
    const piecewise = await arriving.finish(0, true)
    expect(piecewise.verdict).toBe(direct.verdict)
    expect(piecewise.views).toEqual(direct.views)
    expect(piecewise.faint).toEqual(direct.faint)
    expect(piecewise.reasons).toEqual(direct.reasons)
    // A verdict on fewer renders than the check takes is refused, never a PASS.
    const short = new ArrivingRenders(seen, Promise.resolve(check))
    renderReleased(defaced, levels, (look, view) => (look === 0 ? short.add(look, view) : undefined))
    await expect(short.finish(0, true)).rejects.toThrow(/15 defaced and 0 faint renders arrived, not 15 and 5/)
  })

  it('fails a copy whose face was only dimmed below the skin level: the faint look finds it', async () => {
    // What a defacer that leaves the skin's dim outer layer behind produces: the renders at the
    // check's level show a cut, but the face is there at a lower level, for anyone to render.
    const { skin, faint } = skinLevels(sample)
    const slope = sample.scaling?.slope ?? 1
    const ghost = Math.floor((faint + skin) / 2 / slope)
    const cut = planeDeface(sample)
    const dimmed = withVoxels(sample, Uint8Array.from(sample.data, (v, i) => (cut.data[i] === v ? v : Math.min(v, ghost))))
    const result = await verifyFaceRemoved(sample, dimmed, check)
    expect(result.detail.facesLeft).toEqual([])
    expect(result.verdict).toBe('FAIL')
    expect(result.release).toBe(false)
    expect(result.faint.views.some((v) => v.defacedFace)).toBe(true)
    expect(result.reasons.join(' ')).toMatch(/rendered at the faint skin level .* still show a face/)
  })
})

describeWithSharedData('verifyFaceRemoved on the shared data', () => {
  it('says NO-FACE for the skull-stripped control, and releases it', async () => {
    const volume = await readVolume(sharedPath('controls', 'MR_Gd_skullstripped.nii.gz'))
    const result = await verifyFaceRemoved(volume, volume, check)
    expect(result.verdict).toBe('NO-FACE')
    expect(result.detail.noFace).toBe('no-face-in-field-of-view')
    expect(result.release).toBe(true)
    expect(result.views.every((v) => !v.originalFace && !v.identified)).toBe(true)
  })

  it('withholds a NO-FACE volume the defacer changed: no render confirms what is left', async () => {
    const volume = await readVolume(sharedPath('controls', 'MR_Gd_skullstripped.nii.gz'))
    const changed = withVoxels(volume, volume.data.map((v, i) => (i % 7 === 0 ? 0 : v)) as typeof volume.data)
    const result = await verifyFaceRemoved(volume, changed, check)
    expect(result.verdict).toBe('NO-FACE')
    expect(result.release).toBe(false)
    expect(result.reasons.join(' ')).toMatch(/withheld/)
  })
})
