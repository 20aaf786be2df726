import { describe, expect, it } from 'vitest'
import sharp from 'sharp'
import { makeHeadPhantom } from '../../test/phantom/head-phantom.js'
import { DEFAULT_VIEWS, renderSkinViews, type RenderedView } from './render-surface.js'
import { montagePng, viewToPng } from './view-images.js'

const FRONT = { yaw: 0, pitch: 0 }
const head = makeHeadPhantom({ contrast: 'T1', orientation: 'RAS' }).volume

describe('PNG output', () => {
  it('writes a view as a grey PNG with the same pixels', async () => {
    const view = renderSkinViews(head, { views: [FRONT], imageSize: 64 })[0] as RenderedView
    const png = await viewToPng(view)
    const info = await sharp(png).metadata()
    expect([info.format, info.width, info.height, info.channels]).toEqual(['png', 64, 64, 1])
    const data = await sharp(png).toColourspace('b-w').raw().toBuffer()
    expect(new Uint8Array(data)).toEqual(view.pixels)
  })

  it('lays views out in a montage, row by row', async () => {
    const views = renderSkinViews(head, { views: DEFAULT_VIEWS.slice(0, 7), imageSize: 48 })
    const info = await sharp(await montagePng(views, 5)).metadata()
    expect([info.format, info.width, info.height]).toEqual(['png', 5 * 48, 2 * 48])
  })
})
