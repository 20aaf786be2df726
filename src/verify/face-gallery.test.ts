import { stat } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { descriptorDistance } from './face-detector.js'
import { DEFAULT_GALLERY_PATH, GALLERY_FORMAT, decodeDescriptor, encodeDescriptor, loadFaceGallery, parseGallery, serializeGallery, type FaceGallery } from './face-gallery.js'
import { DEFAULT_VIEWS } from './render-surface.js'

function wave(phase: number): Float32Array {
  return Float32Array.from({ length: 128 }, (_, i) => 0.3 * Math.sin(i * 0.7 + phase))
}

describe('face gallery encoding', () => {
  it('stores a descriptor in 172 characters and gets it back to within half a step', () => {
    const d = wave(1)
    const { scale, descriptor } = encodeDescriptor(d)
    expect(descriptor).toHaveLength(172)
    const back = decodeDescriptor(scale, descriptor)
    expect(back).toHaveLength(128)
    for (let i = 0; i < 128; i++) expect(Math.abs((back[i] as number) - (d[i] as number))).toBeLessThanOrEqual(scale / 2 + 1e-7)
    expect(descriptorDistance(back, d)).toBeLessThan(0.01)
  })

  it('round-trips a gallery through JSON text', () => {
    const gallery: FaceGallery = {
      format: GALLERY_FORMAT,
      builtFrom: { command: 'test' },
      calibration: { faceScoreThreshold: 0.6, maxMatchDistance: 0.3, note: 'x' },
      heads: [
        { id: 'a', person: 'p', views: [{ yaw: 0, pitch: 0, score: 0.91234567, descriptor: wave(0) }] },
        { id: 'b', person: 'p', views: [] },
      ],
    }
    const parsed = parseGallery(serializeGallery(gallery))
    expect(parsed.calibration).toEqual(gallery.calibration)
    expect(parsed.builtFrom).toEqual(gallery.builtFrom)
    expect(parsed.heads.map((h) => [h.id, h.person, h.views.length])).toEqual([['a', 'p', 1], ['b', 'p', 0]])
    expect(parsed.heads[0]?.views[0]?.score).toBe(0.9123)
    expect(descriptorDistance(parsed.heads[0]?.views[0]?.descriptor as Float32Array, wave(0))).toBeLessThan(0.01)
  })

  it('refuses other JSON', () => {
    expect(() => parseGallery('{"format": "something else"}')).toThrow(/not a face gallery/)
    expect(() => parseGallery(`{"format": "${GALLERY_FORMAT}", "heads": []}`)).toThrow(/no calibration/)
  })
})

describe('the shipped gallery (models/face-gallery.json)', () => {
  it('is small, says what it was built from, and holds the calibration', async () => {
    expect((await stat(DEFAULT_GALLERY_PATH)).size).toBeLessThan(150 * 1024)
    const gallery = await loadFaceGallery()
    expect(gallery.builtFrom.command).toMatch(/build-face-gallery/)
    const { faceScoreThreshold, maxMatchDistance } = gallery.calibration
    expect(faceScoreThreshold).toBeGreaterThan(0.2)
    expect(faceScoreThreshold).toBeLessThan(1)
    expect(maxMatchDistance).toBeGreaterThan(0.1)
    expect(maxMatchDistance).toBeLessThan(0.6)
    expect(gallery.heads.length).toBeGreaterThanOrEqual(19)
    const angles = new Set(DEFAULT_VIEWS.map((v) => `${v.yaw}/${v.pitch}`))
    for (const head of gallery.heads) {
      for (const view of head.views) {
        expect(angles.has(`${view.yaw}/${view.pitch}`)).toBe(true)
        expect(view.descriptor).toHaveLength(128)
      }
    }
    // Every head with a full face has its frontal view, the one the check relies on most.
    const perHead = gallery.calibration.perHead as Array<{ id: string; fullFace: boolean }>
    const fullFace = new Set(perHead.filter((h) => h.fullFace).map((h) => h.id))
    expect(fullFace.size).toBe(19)
    for (const head of gallery.heads.filter((h) => fullFace.has(h.id))) expect(head.views.some((v) => v.yaw === 0 && v.pitch === 0), head.id).toBe(true)
  })

  it('is read once', async () => {
    expect(await loadFaceGallery()).toBe(await loadFaceGallery())
  })
})
