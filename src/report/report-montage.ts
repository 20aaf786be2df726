/**
 * The report's picture: the renders of the original on the left and those of the defaced volume
 * on the right, laid out alike (one row per pitch, one column per yaw), beside the mid-sagittal
 * slice with the removed region overlaid.
 */
import sharp from 'sharp'
import type { RenderedView } from '../verify/render-surface.js'
import type { RgbImage } from './slice-overlay.js'

const LABEL_COLOUR = '#ffcc00'
const GAP = 16

export async function reportMontage(before: RenderedView[], after: RenderedView[], slice: RgbImage): Promise<Buffer> {
  const first = before[0]
  if (first === undefined || after.length !== before.length) throw new Error('the montage needs the same views before and after')
  const yaws = [...new Set(before.map((v) => v.yaw))]
  const pitches = [...new Set(before.map((v) => v.pitch))]
  const { width: tile, height: tileHeight } = first
  const gridWidth = yaws.length * tile
  const height = pitches.length * tileHeight
  const sliceWidth = Math.round((height * slice.width * slice.pixelMm[0]) / (slice.height * slice.pixelMm[1]))
  const sliceImage = await sharp(slice.data, { raw: { width: slice.width, height: slice.height, channels: 3 } })
    .resize(sliceWidth, height, { fit: 'fill', kernel: 'nearest' })
    .png()
    .toBuffer()
  const place = (view: RenderedView, offset: number) => ({
    left: offset + yaws.indexOf(view.yaw) * tile,
    top: pitches.indexOf(view.pitch) * tileHeight,
  })
  const tiles = await Promise.all(
    [...before.map((v) => [v, 0] as const), ...after.map((v) => [v, gridWidth + GAP] as const)].map(async ([view, offset]) => ({
      input: await sharp(view.pixels, { raw: { width: view.width, height: view.height, channels: 1 } }).toColourspace('srgb').png().toBuffer(),
      ...place(view, offset),
    })),
  )
  const width = 2 * (gridWidth + GAP) + sliceWidth
  const text = (x: number, y: number, s: string) => `<text x="${x}" y="${y}">${s}</text>`
  const labels = [
    ...before.map((v) => { const p = place(v, 0); return text(p.left + 4, p.top + 14, `before  yaw ${signed(v.yaw)} pitch ${signed(v.pitch)}`) }),
    ...after.map((v) => { const p = place(v, gridWidth + GAP); return text(p.left + 4, p.top + 14, `after  yaw ${signed(v.yaw)} pitch ${signed(v.pitch)}`) }),
    text(2 * (gridWidth + GAP) + 4, 14, 'removed (red), brain (green)'),
  ]
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="sans-serif" font-size="12" fill="${LABEL_COLOUR}">${labels.join('')}</g></svg>`
  return sharp({ create: { width, height, channels: 3, background: '#202124' } })
    .composite([...tiles, { input: sliceImage, left: 2 * (gridWidth + GAP), top: 0 }, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer()
}

function signed(degrees: number): string {
  return degrees > 0 ? `+${degrees}` : `${degrees}`
}
