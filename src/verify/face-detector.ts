/**
 * The verify stage's eyes: a face detector and a face-recognition embedding, run on the skin
 * renders of render-surface.ts, offline and on the CPU.
 *
 * They come from @vladmandic/face-api (SSD MobileNet v1 and Tiny Face Detector, the 68-point
 * landmark net, and the 128-D ResNet face-recognition net of dlib's training) on TensorFlow.js's
 * WebAssembly backend. The networks' weights ship inside the face-api package, under `model/`,
 * and are read from disk; the backend's .wasm files are read from its own `dist/` folder. Nothing
 * is fetched from the network, and no native addon is needed.
 *
 * face-api's Node builds are CommonJS bundles that require '@tensorflow/tfjs' and
 * '@tensorflow/tfjs-backend-wasm', so they are loaded with createRequire; the tfjs they use is the
 * one the same require gives here.
 */
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import type * as FaceApiModule from '@vladmandic/face-api'
import type { RenderedView, ViewAngle } from './render-surface.js'
import { registerQuickConcat } from './wasm-concat.js'

type FaceApi = typeof FaceApiModule
type Tensor3D = FaceApiModule.tf.Tensor3D

/** A rectangle in the pixels of a view: column and row of its top left corner, and its size. */
export interface FaceBox {
  x: number
  y: number
  width: number
  height: number
}

export interface FaceFinding extends ViewAngle {
  /** The detector's confidence, 0 to 1. */
  score: number
  /** Where the detector put the face. */
  box: FaceBox
  /**
   * The square-ish box, aligned on the 68 landmarks the way dlib aligns faces, that the
   * descriptor was computed from; describeBox at this box on another render of the same view
   * gives the descriptor of whatever is there now.
   */
  descriptorBox: FaceBox
  /** The 128-D face-recognition embedding; same person ≈ Euclidean distance under 0.6 on photos. */
  descriptor: Float32Array
}

export type DetectorKind = 'ssd' | 'tiny'

export interface FaceModelOptions {
  /** 'tiny' (Tiny Face Detector, default) or 'ssd' (SSD MobileNet v1, about 15 times slower here). */
  detector?: DetectorKind
  /** Tiny Face Detector's input size in pixels, a multiple of 32; DEFAULT_TINY_INPUT_SIZE by default. */
  inputSize?: number
}

export interface FaceModel {
  readonly detector: DetectorKind
  /** The detector's input size in pixels (always 512 for SSD MobileNet v1). */
  readonly inputSize: number
  /** @internal */
  readonly api: FaceApi
}

export interface FindOptions {
  /** Detections scoring below this are ignored; by default every candidate the detector reports. */
  minScore?: number
}

/**
 * Of the input sizes tried (128 to 416) and SSD MobileNet v1, the one that best separated the
 * original renders of the real heads from plane-defaced ones, and among the quickest: see
 * docs/face-check.md.
 */
export const DEFAULT_TINY_INPUT_SIZE = 160
/**
 * The detectors are asked for every candidate above this score, so that calibration and reports
 * can see weak ones; the verdict applies its own threshold.
 */
const CANDIDATE_SCORE = 0.01

const require = createRequire(import.meta.url)
let ready: Promise<FaceApi> | undefined

/** Loads the backend, the landmark and the recognition networks once per process; later calls reuse them. */
async function loadApi(): Promise<FaceApi> {
  ready ??= (async () => {
    const api = require('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi
    const tf = require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs')
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm')
    // The .wasm binaries sit beside the backend's Node entry point; a path prefix (not a URL)
    // makes the Node build read them with fs.
    wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + sep)
    if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js WebAssembly backend did not start')
    await tf.ready()
    registerQuickConcat(tf)
    const modelDir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model')
    await Promise.all([api.nets.faceLandmark68Net.loadFromDisk(modelDir), api.nets.faceRecognitionNet.loadFromDisk(modelDir)])
    return api
  })()
  try {
    return await ready
  } catch (error) {
    ready = undefined
    throw error
  }
}

export async function loadFaceModel(options: FaceModelOptions = {}): Promise<FaceModel> {
  const detector = options.detector ?? 'tiny'
  const inputSize = detector === 'ssd' ? 512 : (options.inputSize ?? DEFAULT_TINY_INPUT_SIZE)
  if (detector === 'tiny' && (!Number.isInteger(inputSize) || inputSize < 32 || inputSize % 32 !== 0)) {
    throw new Error(`the tiny face detector's input size must be a positive multiple of 32, not ${inputSize}`)
  }
  const api = await loadApi()
  // Only the detector asked for: the SSD's 5 MB of weights cost a second to load and are not used by default.
  const net = detector === 'ssd' ? api.nets.ssdMobilenetv1 : api.nets.tinyFaceDetector
  if (!net.isLoaded) await net.loadFromDisk(join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model'))
  return { detector, inputSize, api }
}

/** The grey render as a [height, width, 3] tensor of 0-255 values, as the networks take photos. */
function viewTensor(api: FaceApi, view: RenderedView): Tensor3D {
  const { width, height, pixels } = view
  if (pixels.length !== width * height) throw new Error(`a ${width}x${height} view has ${pixels.length} pixels`)
  const rgb = new Float32Array(pixels.length * 3)
  for (let i = 0, o = 0; i < pixels.length; i++, o += 3) {
    const v = pixels[i] as number
    rgb[o] = v
    rgb[o + 1] = v
    rgb[o + 2] = v
  }
  return api.tf.tensor3d(rgb, [height, width, 3])
}

function detectorOptions(model: FaceModel, minScore: number): FaceApiModule.SsdMobilenetv1Options | FaceApiModule.TinyFaceDetectorOptions {
  const { api } = model
  return model.detector === 'ssd'
    ? new api.SsdMobilenetv1Options({ minConfidence: minScore, maxResults: 10 })
    : new api.TinyFaceDetectorOptions({ inputSize: model.inputSize, scoreThreshold: minScore })
}

function toBox(box: { x: number; y: number; width: number; height: number }): FaceBox {
  return { x: box.x, y: box.y, width: box.width, height: box.height }
}

/**
 * Every face the detector sees in the view, best first, with its score and box; no landmarks or
 * descriptors (cheap: one detector pass).
 */
export async function detectFaces(model: FaceModel, view: RenderedView, options: FindOptions = {}): Promise<Array<{ score: number; box: FaceBox }>> {
  const { api } = model
  const image = viewTensor(api, view)
  try {
    const detections = await api.detectAllFaces(image, detectorOptions(model, options.minScore ?? CANDIDATE_SCORE))
    return detections.map((d) => ({ score: d.score, box: toBox(d.box) })).sort((a, b) => b.score - a.score)
  } finally {
    image.dispose()
  }
}

/**
 * The best-scoring face in the view, with its landmark-aligned box and descriptor; undefined
 * when the detector sees nothing scoring at least minScore.
 */
export async function findFace(model: FaceModel, view: RenderedView, options: FindOptions = {}): Promise<FaceFinding | undefined> {
  return (await inspectView(model, view, options.minScore ?? CANDIDATE_SCORE)).face
}

/**
 * One detector pass over the view: the best candidate's score and box, and, when that score is
 * at least `describeFrom`, the face's landmark-aligned box and descriptor (findFace's answer).
 * Views without a face cost only the detector pass.
 */
export async function inspectView(model: FaceModel, view: RenderedView, describeFrom: number): Promise<{ best?: { score: number; box: FaceBox }; face?: FaceFinding }> {
  const { api } = model
  const image = viewTensor(api, view)
  try {
    const detections = await api.detectAllFaces(image, detectorOptions(model, CANDIDATE_SCORE))
    let best: FaceApiModule.FaceDetection | undefined
    for (const d of detections) if (best === undefined || d.score > best.score) best = d
    if (best === undefined) return {}
    const found = { score: best.score, box: toBox(best.box) }
    if (best.score < describeFrom) return { best: found }
    // As face-api's withFaceLandmarks().withFaceDescriptor(): landmarks on the detector's crop,
    // then the descriptor of the crop aligned on them.
    const [crop] = await api.extractFaceTensors(image, [best])
    if (crop === undefined) return { best: found }
    let landmarks: FaceApiModule.FaceLandmarks68
    try {
      landmarks = (await api.nets.faceLandmark68Net.detectLandmarks(crop)) as FaceApiModule.FaceLandmarks68
    } finally {
      crop.dispose()
    }
    // extractFaceTensors crops the box clipped to the picture, so the landmarks are relative to that.
    const clipped = best.box.clipAtImageBorders(view.width, view.height)
    const aligned = landmarks.shiftBy(clipped.x, clipped.y).align(null, { useDlibAlignment: true })
    const descriptorBox = toBox(aligned)
    const descriptor = await describeTensor(api, image, descriptorBox)
    if (descriptor === undefined) return { best: found }
    return { best: found, face: { yaw: view.yaw, pitch: view.pitch, ...found, descriptorBox, descriptor } }
  } finally {
    image.dispose()
  }
}

/**
 * The descriptor of what the view shows inside `box`, whether or not a face is detected there:
 * how a defaced render is compared with its original at the original's face.
 */
export async function describeBox(model: FaceModel, view: RenderedView, box: FaceBox): Promise<Float32Array> {
  const { api } = model
  const image = viewTensor(api, view)
  try {
    const descriptor = await describeTensor(api, image, box)
    if (descriptor === undefined) throw new Error(`the box ${JSON.stringify(box)} lies outside the ${view.width}x${view.height} view`)
    return descriptor
  } finally {
    image.dispose()
  }
}

async function describeTensor(api: FaceApi, image: Tensor3D, box: FaceBox): Promise<Float32Array | undefined> {
  const [face] = await api.extractFaceTensors(image, [new api.Rect(box.x, box.y, box.width, box.height)])
  if (face === undefined) return undefined
  try {
    return (await withSquare(api, face, (square) => api.nets.faceRecognitionNet.computeFaceDescriptor(square))) as Float32Array
  } finally {
    face.dispose()
  }
}

/**
 * `use` on the crop padded with zeros to a square, centred, exactly as face-api pads a crop before
 * its recognition net; but with tf.pad, which the WebAssembly backend runs natively, where
 * face-api's tf.concat runs as JavaScript. The values are the same. (The landmark net maps its
 * points back through its own padding, so its crop is left to face-api.)
 */
async function withSquare<T>(api: FaceApi, crop: Tensor3D, use: (square: Tensor3D) => Promise<T>): Promise<T> {
  const [height, width] = crop.shape
  if (height === width) return use(crop)
  const missing = Math.abs(height - width)
  const after = Math.round(missing / 2)
  const sides: [number, number] = [missing - after, after]
  const square = api.tf.pad(crop, height > width ? [[0, 0], sides, [0, 0]] : [sides, [0, 0], [0, 0]])
  try {
    return await use(square)
  } finally {
    square.dispose()
  }
}

/** Euclidean distance between two descriptors. */
export function descriptorDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`descriptors of ${a.length} and ${b.length} values`)
  let sum = 0
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number)
    sum += d * d
  }
  return Math.sqrt(sum)
}
