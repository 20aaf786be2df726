/**
 * Renders as PNG files, for people and scripts that look at them. Apart from render-surface.ts
 * so that the face check's thread, which only needs the pixels, never loads sharp.
 */
import sharp from 'sharp'
import { viewCaption, type RenderedView } from './render-surface.js'

export function viewToPng(view: RenderedView): Promise<Buffer> {
  return sharp(view.pixels, { raw: { width: view.width, height: view.height, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toBuffer()
}

/** All views in one image, `columns` to a row in the order given, each labelled with its angles. */
export async function montagePng(views: RenderedView[], columns: number): Promise<Buffer> {
  const first = views[0]
  if (first === undefined) throw new Error('no views to put in a montage')
  const { width, height } = first
  const rows = Math.ceil(views.length / columns)
  const tiles = await Promise.all(
    views.map(async (view, i) => ({
      input: await viewToPng(view),
      left: (i % columns) * width,
      top: Math.floor(i / columns) * height,
    })),
  )
  const labels = views.map((view, i) => {
    const x = (i % columns) * width + 4
    const y = Math.floor(i / columns) * height + 14
    return `<text x="${x}" y="${y}">${viewCaption(view)}</text>`
  })
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${columns * width}" height="${rows * height}"><g font-family="sans-serif" font-size="12" fill="#ffcc00">${labels.join('')}</g></svg>`
  return sharp({ create: { width: columns * width, height: rows * height, channels: 3, background: '#000000' } })
    .composite([...tiles, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer()
}
