/**
 * The report's picture: the renders of the original on the left and those of the defaced volume
 * on the right, laid out alike (one row per pitch, one column per yaw), beside the mid-sagittal
 * slice with the removed region overlaid.
 */
import { viewCaption, type RenderedView } from '../verify/render-surface.js'
import type { RgbImage } from './slice-overlay.js'

const LABEL_COLOUR = '#ffcc00'
const GAP = 16
const BACKGROUND = 0x20

/** The montage's pixels: interleaved RGB, row-major, top row first. */
export interface MontageImage {
  width: number
  height: number
  data: Uint8Array
}

export async function reportMontage(before: RenderedView[], after: RenderedView[], slice: RgbImage): Promise<{ png: Buffer; image: MontageImage }> {
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
    return text(left + 4, top + 14, `${what}  ${viewCaption(v)}`)
  }
  const labels = [
    ...before.map((v) => label(v, 0, 'before')),
    ...after.map((v) => label(v, gridWidth + GAP, 'after')),
    text(sliceLeft + 4, 14, 'removed (red), brain (green)'),
  ]
  // The slice's width varies from scan to scan, the labels do not: drawn on a layer of fixed
  // width, they are the same for every scan with the same views, and drawn once.
  const layerWidth = sliceLeft + SLICE_LABEL_WIDTH
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${layerWidth}" height="${height}"><g font-family="sans-serif" font-size="12" fill="${LABEL_COLOUR}">${labels.join('')}</g></svg>`
  const layer = await labelLayer(svg)
  for (let p = 0; p < layer.count; p++) {
    const x = layer.x[p] as number
    if (x >= width) continue
    const alpha = (layer.rgba[p * 4 + 3] as number) / 255
    const at = ((layer.y[p] as number) * width + x) * 3
    for (let c = 0; c < 3; c++) canvas[at + c] = Math.round((layer.rgba[p * 4 + c] as number) * alpha + (canvas[at + c] as number) * (1 - alpha))
  }
  // Loaded on first use: importing sharp costs every command about 0.1 s, and only reports need it.
  const { default: sharp } = await import('sharp')
  // Level 3 encodes in 41 ms where the default 6 takes 52, for a file 2% larger (3360x768, 2026-12-02).
  const png = await sharp(canvas, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 3 }).toBuffer()
  return { png, image: { width, height, data: canvas } }
}

/** Room for the slice's own label, which is clipped where the slice is narrower. */
const SLICE_LABEL_WIDTH = 240

/** The label text's pixels (those not fully transparent): positions and RGBA. */
interface LabelLayer {
  count: number
  x: Int32Array
  y: Int32Array
  rgba: Uint8Array
}

/** The last layer drawn, by its SVG: rasterising the text cost about 30 ms a scan. */
let lastLayer: { svg: string; layer: Promise<LabelLayer> } | undefined

function labelLayer(svg: string): Promise<LabelLayer> {
  if (lastLayer !== undefined && lastLayer.svg === svg) return lastLayer.layer
  const layer = rasteriseLabels(svg)
  lastLayer = { svg, layer }
  // A failure is the caller's to report, and is not kept for the next scan.
  layer.catch(() => {
    if (lastLayer?.layer === layer) lastLayer = undefined
  })
  return layer
}

async function rasteriseLabels(svg: string): Promise<LabelLayer> {
  const { default: sharp } = await import('sharp')
  const { data, info } = await sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer({ resolveWithObject: true })
  const x: number[] = []
  const y: number[] = []
  const rgba: number[] = []
  for (let i = 0; i < info.width * info.height; i++) {
    if (data[i * 4 + 3] === 0) continue
    x.push(i % info.width)
    y.push(Math.floor(i / info.width))
    rgba.push(...data.subarray(i * 4, i * 4 + 4))
  }
  return { count: x.length, x: Int32Array.from(x), y: Int32Array.from(y), rgba: Uint8Array.from(rgba) }
}
