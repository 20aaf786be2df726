/**
 * The report's picture: the renders of the original above those of the defaced volume, view for
 * view, beside the mid-sagittal slice with the removed region overlaid.
 */
import sharp from 'sharp'
import type { RenderedView } from '../verify/render-surface.js'
import type { RgbImage } from './slice-overlay.js'

const LABEL_COLOUR = '#ffcc00'

export async function reportMontage(before: RenderedView[], after: RenderedView[], slice: RgbImage): Promise<Buffer> {
  const first = before[0]
  if (first === undefined || after.length !== before.length) throw new Error('the montage needs the same views before and after')
  const tile = first.width
  const columns = before.length
  const height = 2 * first.height
  const sliceWidth = Math.round((height * slice.width * slice.pixelMm[0]) / (slice.height * slice.pixelMm[1]))
  const sliceImage = await sharp(slice.data, { raw: { width: slice.width, height: slice.height, channels: 3 } })
    .resize(sliceWidth, height, { fit: 'fill', kernel: 'nearest' })
    .png()
    .toBuffer()
  const tiles = await Promise.all(
    [...before, ...after].map(async (view, i) => ({
      input: await sharp(view.pixels, { raw: { width: view.width, height: view.height, channels: 1 } }).toColourspace('srgb').png().toBuffer(),
      left: (i % columns) * tile,
      top: Math.floor(i / columns) * first.height,
    })),
  )
  const width = columns * tile + sliceWidth
  const text = (x: number, y: number, s: string) => `<text x="${x}" y="${y}">${s}</text>`
  const labels = [
    ...before.map((v, i) => text(i * tile + 4, 14, `before  yaw ${signed(v.yaw)} pitch ${signed(v.pitch)}`)),
    ...after.map((v, i) => text(i * tile + 4, first.height + 14, `after  yaw ${signed(v.yaw)} pitch ${signed(v.pitch)}`)),
    text(columns * tile + 4, 14, 'mid-sagittal: removed (red), brain (green)'),
  ]
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="sans-serif" font-size="12" fill="${LABEL_COLOUR}">${labels.join('')}</g></svg>`
  return sharp({ create: { width, height, channels: 3, background: '#000000' } })
    .composite([...tiles, { input: sliceImage, left: columns * tile, top: 0 }, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer()
}

function signed(degrees: number): string {
  return degrees > 0 ? `+${degrees}` : `${degrees}`
}
