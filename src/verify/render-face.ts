/**
 * The render-face classifier: a small network of our own (models/unface-render-face.onnx,
 * trained by models/train/train_render_face.py) that says whether a skin render shows a face.
 *
 * The photo face detector (face-detector.ts) finds faces on the frontal renders but almost never
 * from ±60°, where a person still plainly sees one; this network was trained on the renders
 * themselves, from every view, so a face left visible only from the side is caught too.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import { UnfaceError } from '../io/errors.js'
import type { RenderedView } from './render-surface.js'

/** The classifier's input: the render averaged down to this many pixels a side. */
export const RENDER_FACE_INPUT_SIZE = 128

/** The view's pixels averaged over square blocks down to RENDER_FACE_INPUT_SIZE a side (nearest block for sizes that do not divide). */
export function shrinkView(view: RenderedView): Uint8Array {
  const n = RENDER_FACE_INPUT_SIZE
  const out = new Uint8Array(n * n)
  const { width, height, pixels } = view
  for (let r = 0; r < n; r++) {
    const y0 = Math.floor((r * height) / n)
    const y1 = Math.max(y0 + 1, Math.floor(((r + 1) * height) / n))
    for (let c = 0; c < n; c++) {
      const x0 = Math.floor((c * width) / n)
      const x1 = Math.max(x0 + 1, Math.floor(((c + 1) * width) / n))
      let sum = 0
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += pixels[y * width + x] as number
      out[r * n + c] = Math.round(sum / ((y1 - y0) * (x1 - x0)))
    }
  }
  return out
}

export const DEFAULT_RENDER_FACE_MODEL_PATH = fileURLToPath(new URL('../../models/unface-render-face.onnx', import.meta.url))
/**
 * A render shows a face at this probability or above; fixed before validation. Out of fold
 * (models/unface-render-face.md) it found a face on 95% of the original views of people it had
 * not seen, and on no view of a head defaced by unface or cut by a plane.
 */
export const RENDER_FACE_THRESHOLD = 0.5

export interface RenderFaceModel {
  session: ort.InferenceSession
  path: string
  sha256: string
}

export async function loadRenderFaceModel(path: string = DEFAULT_RENDER_FACE_MODEL_PATH): Promise<RenderFaceModel> {
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new UnfaceError(error.code === 'ENOENT' ? 'render-face model not found (the installation is incomplete)' : `render-face model cannot be read (${error.code ?? error.message})`, { file: path })
  })
  // One thread: the network is small, and the face check's thread shares the cores with the segmentation's.
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
  return { session, path, sha256: createHash('sha256').update(bytes).digest('hex') }
}

/** The probability that each view shows a face, in the order given; all views in one batch. */
export async function renderFaceScores(model: RenderFaceModel, views: RenderedView[]): Promise<number[]> {
  if (views.length === 0) return []
  const n = RENDER_FACE_INPUT_SIZE
  const input = new Float32Array(views.length * n * n)
  views.forEach((view, i) => input.set(shrinkView(view), i * n * n))
  const { session } = model
  const results = await session.run({ [session.inputNames[0] as string]: new ort.Tensor('float32', input, [views.length, 1, n, n]) })
  const output = results[session.outputNames[0] as string]
  if (output === undefined || output.data.length !== views.length) throw new Error(`unexpected render-face output ${output?.dims.join('x')}`)
  return Array.from(output.data as Float32Array)
}
