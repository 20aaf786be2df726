/**
 * A small picture per image for the dataset report: the per-image montage (renders before and
 * after, the mid-sagittal slice with the removed region) scaled down as a whole, so that it does
 * not depend on how src/report lays the montage out. A JPEG of some tens of kB, small enough to
 * embed hundreds in one page.
 */
import type { MontageImage } from '../report/report-montage.js'

export const THUMBNAIL_HEIGHT = 240
export const THUMBNAIL_MAX_WIDTH = 1400

export async function montageThumbnail(montage: MontageImage): Promise<Buffer> {
  // Loaded on first use, as in src/report/report-montage.ts.
  const { default: sharp } = await import('sharp')
  // From the pixels rather than the PNG on disk: decoding it again cost three times the resize.
  return sharp(montage.data, { raw: { width: montage.width, height: montage.height, channels: 3 } })
    .resize({ width: THUMBNAIL_MAX_WIDTH, height: THUMBNAIL_HEIGHT, fit: 'inside' })
    .jpeg({ quality: 78 })
    .toBuffer()
}
