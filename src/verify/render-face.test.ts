import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { readVolume } from '../io/read-volume.js'
import type { Volume } from '../io/volume.js'
import { planeDeface } from './plane-deface.js'
import { loadRenderFaceModel, renderFaceScores, RENDER_FACE_INPUT_SIZE, RENDER_FACE_THRESHOLD, shrinkView, type RenderFaceModel } from './render-face.js'
import { DEFAULT_VIEWS, renderSkinViews, skinThreshold, type RenderedView, type ViewAngle } from './render-surface.js'

const SAMPLE = join(import.meta.dirname, '..', '..', 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz')

function view(width: number, height: number, pixel: (x: number, y: number) => number): RenderedView {
  const pixels = new Uint8Array(width * height)
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) pixels[y * width + x] = pixel(x, y)
  return { yaw: 0, pitch: 0, width, height, pixels, hitFraction: 1 }
}

describe('shrinkView', () => {
  it('averages 2x2 blocks of a 256-pixel render', () => {
    const shrunk = shrinkView(view(256, 256, (x, y) => (x % 2) * 100 + (y % 2) * 50 + (x >> 1)))
    expect(shrunk).toHaveLength(RENDER_FACE_INPUT_SIZE * RENDER_FACE_INPUT_SIZE)
    // Block (c, r) holds 0, 100, 50, 150 plus c: mean 75 + c.
    expect(shrunk[0]).toBe(75)
    expect(shrunk[5 * RENDER_FACE_INPUT_SIZE + 17]).toBe(92)
  })

  it('keeps every pixel of a 128-pixel render, and takes blocks of other sizes', () => {
    const same = view(128, 128, (x, y) => (x * 3 + y) % 256)
    expect(shrinkView(same)).toEqual(same.pixels)
    const odd = shrinkView(view(200, 200, () => 77))
    expect(odd.every((v) => v === 77)).toBe(true)
  })
})

describe('the render-face classifier on the bundled sample', () => {
  let model: RenderFaceModel
  let sample: Volume
  let threshold: number
  beforeAll(async () => {
    ;[model, sample] = await Promise.all([loadRenderFaceModel(), readVolume(SAMPLE)])
    threshold = skinThreshold(sample)
  })

  it('finds a face on the original from every default view, ±60° included, where the photo detector finds almost none', async () => {
    const scores = await renderFaceScores(model, renderSkinViews(sample, { threshold }))
    expect(scores).toHaveLength(DEFAULT_VIEWS.length)
    for (const [i, score] of scores.entries()) expect(score, `yaw ${DEFAULT_VIEWS[i]?.yaw} pitch ${DEFAULT_VIEWS[i]?.pitch}`).toBeGreaterThanOrEqual(RENDER_FACE_THRESHOLD)
  })

  it('finds none once the face is cut away, and still one when only the nose tip is', async () => {
    const cut = await renderFaceScores(model, renderSkinViews(planeDeface(sample, { threshold }), { threshold }))
    expect(Math.max(...cut)).toBeLessThan(RENDER_FACE_THRESHOLD)
    const nicked = await renderFaceScores(model, renderSkinViews(planeDeface(sample, { threshold, behindNoseMm: 15 }), { threshold }))
    expect(nicked.filter((s) => s >= RENDER_FACE_THRESHOLD).length).toBeGreaterThanOrEqual(12)
  })

  it('scores a batch as it scores each view alone', async () => {
    const views = renderSkinViews(sample, { threshold, views: [DEFAULT_VIEWS[0], DEFAULT_VIEWS[7]] as ViewAngle[] })
    const together = await renderFaceScores(model, views)
    const alone = [...(await renderFaceScores(model, [views[0] as RenderedView])), ...(await renderFaceScores(model, [views[1] as RenderedView]))]
    for (let i = 0; i < 2; i++) expect(together[i]).toBeCloseTo(alone[i] as number, 5)
    expect(await renderFaceScores(model, [])).toEqual([])
  })

  it('says which file is missing', async () => {
    await expect(loadRenderFaceModel('/nonexistent/render-face.onnx')).rejects.toThrow(/\/nonexistent\/render-face\.onnx: render-face model not found/)
  })
})
