/**
 * The report's picture: the renders of the original on the left and those of the defaced volume
 * on the right, laid out alike (one row per pitch, one column per yaw), beside the mid-sagittal
 * slice with the removed region overlaid.
 */
import type { RenderedView } from '../verify/render-surface.js'
import type { RgbImage } from './slice-overlay.js'

const LABEL_COLOUR = '#ffcc00'
const GAP = 16
const BACKGROUND = 0x20

export async function reportMontage(before: RenderedView[], after: RenderedView[], slice: RgbImage): Promise<Buffer> {
  const first = before[0]
  if (first === undefined || after.length !== before.length) throw new Error('the montage needs the same views before and after')
  const yaws = [...new Set(before.map((v) => v.yaw))]
  const pitches = [...new Set(before.map((v) => v.pitch))]
  const { width: tile, height: tileHeight } = first
  const gridWidth = yaws.length * tile
  const height = pitches.length * tileHeight
  const sliceWidth = Math.round((height * slice.width * slice.pixelMm[0]) / (slice.height * slice.pixelMm[1]))
  const sliceLeft = 2 * (gridWidth + GAP)
  const width = sliceLeft + sliceWidth
  // One raw canvas and one PNG encode: composing thirty small PNGs costs several times more.
  const canvas = new Uint8Array(width * height * 3).fill(BACKGROUND)
  const place = (view: RenderedView, offset: number) => ({ left: offset + yaws.indexOf(view.yaw) * tile, top: pitches.indexOf(view.pitch) * tileHeight })
  const draw = (view: RenderedView, offset: number) => {
    const { left, top } = place(view, offset)
    for (let row = 0; row < view.height; row++) {
      let at = ((top + row) * width + left) * 3
      for (let column = 0; column < view.width; column++, at += 3) {
        const grey = view.pixels[row * view.width + column] as number
        canvas[at] = grey
        canvas[at + 1] = grey
        canvas[at + 2] = grey
      }
    }
  }
  for (const view of before) draw(view, 0)
  for (const view of after) draw(view, gridWidth + GAP)
  for (let row = 0; row < height; row++) {
    const sourceRow = Math.min(slice.height - 1, Math.floor((row * slice.height) / height))
    for (let column = 0; column < sliceWidth; column++) {
      const sourceColumn = Math.min(slice.width - 1, Math.floor((column * slice.width) / sliceWidth))
      const from = (sourceRow * slice.width + sourceColumn) * 3
      canvas.set(slice.data.subarray(from, from + 3), (row * width + sliceLeft + column) * 3)
    }
  }
  const text = (x: number, y: number, s: string) => `<text x="${x}" y="${y}">${s}</text>`
  const label = (v: RenderedView, offset: number, what: string) => {
    const { left, top } = place(v, offset)
    return text(left + 4, top + 14, `${what}  yaw ${signed(v.yaw)} pitch ${signed(v.pitch)}`)
  }
  const labels = [
    ...before.map((v) => label(v, 0, 'before')),
    ...after.map((v) => label(v, gridWidth + GAP, 'after')),
    text(sliceLeft + 4, 14, 'removed (red), brain (green)'),
  ]
  // Loaded on first use: importing sharp costs every command about 0.1 s, and only reports need it.
  const { default: sharp } = await import('sharp')
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="sans-serif" font-size="12" fill="${LABEL_COLOUR}">${labels.join('')}</g></svg>`
  return sharp(canvas, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer()
}

function signed(degrees: number): string {
  return degrees > 0 ? `+${degrees}` : `${degrees}`
}
