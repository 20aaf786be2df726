/**
 * A small picture per image for the dataset report: the per-image montage (renders before and
 * after, the mid-sagittal slice with the removed region) scaled down as a whole, so that it does
 * not depend on how src/report lays the montage out. A JPEG of some tens of kB, small enough to
 * embed hundreds in one page.
 */

export const THUMBNAIL_HEIGHT = 240
export const THUMBNAIL_MAX_WIDTH = 1400

export async function montageThumbnail(montagePng: string): Promise<Buffer> {
  // Loaded on first use, as in src/report/report-montage.ts.
  const { default: sharp } = await import('sharp')
  return sharp(montagePng)
    .resize({ width: THUMBNAIL_MAX_WIDTH, height: THUMBNAIL_HEIGHT, fit: 'inside' })
    .jpeg({ quality: 78 })
    .toBuffer()
}
