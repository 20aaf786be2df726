/**
 * The segmentation stage: one small ONNX network labels background, head, face, ears and brain
 * on any head scan. The volume goes to the canonical RAS layout (exact), is resampled to the
 * model grid, and the model's probabilities come back to every input voxel.
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import * as ort from 'onnxruntime-node'
import { forAnalysis, type Volume } from '../io/volume.js'
import { UnfaceError } from '../io/errors.js'
import { distanceToMaskMm } from '../voxels/distance-transform.js'
import { canonicalTransformOf, canonicalGeometry } from '../io/canonical-grid.js'
import {
  MODEL_GRID_SIZE,
  MODEL_GRID_SPACING,
  headCentreMm,
  labelsFromModelGrid,
  normaliseIntensities,
  placeGrid,
  resampleToModelGrid,
  type GridPlacement,
} from './model-grid.js'

/** Label values in every mask unface writes; the model card documents them. */
export const LABELS = { background: 0, head: 1, face: 2, ears: 3, brain: 4 } as const
export type LabelName = keyof typeof LABELS
const CLASS_COUNT = 5
/** Face and ears keep this far (two grid voxels) from the brain, as in the training labels. */
const BRAIN_GAP_MM = 5
/**
 * Where the brain probability exceeds this, the point counts as brain for the gap. Argmax brain
 * falls short of the true brain edge by up to 12 mm at the frontal pole on some IXI heads
 * (measured against their DLMUSE masks); at 5% it reaches it on all 12 (models/README.md).
 */
const BRAIN_SEED_PROBABILITY = 0.05
/**
 * Non-brain tissue (head, face and ears) per brain voxel below which a volume is taken to be
 * skull-stripped: no face can remain. Measured: 1.39 to 2.07 on the 19 real heads, 0.05 on the
 * skull-stripped control.
 */
const SKULL_STRIPPED_TISSUE_RATIO = 0.5
/** How much deeper than the network the face region reaches (see deepenFace). */
const FACE_DEPTH_MM = 12

export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../models/unface-seg.onnx', import.meta.url))

export interface SegmentationModel {
  session: ort.InferenceSession
  path: string
}

export interface Segmentation {
  /** One label per input voxel, in the input's own layout. */
  labels: Uint8Array
  /** Voxel count per label. */
  counts: Record<LabelName, number>
  placement: GridPlacement
  timingsMs: { prepare: number; model: number; labels: number }
}

/** `threads`: by default every core; a process among several sharing the cores takes its share. */
export async function loadSegmentationModel(path: string = DEFAULT_MODEL_PATH, options: { threads?: number } = {}): Promise<SegmentationModel> {
  if (!existsSync(path)) throw new UnfaceError('segmentation model not found (the installation is incomplete)', { file: path })
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: options.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Without the memory pattern the second run is already as fast as any later one, and the
    // session holds about 90 MB less (measured on 96^3: runs of 605, 361, 340 ms against 618,
    // 564, 350 ms, peak RSS 243 against 332 MB).
    enableMemPattern: false,
  })
  return { session, path }
}

export async function segmentHead(given: Volume, model: SegmentationModel): Promise<Segmentation> {
  const t0 = performance.now()
  const volume = forAnalysis(given)
  const transform = canonicalTransformOf(volume)
  const placement = placeGrid(headCentreMm(volume.data, transform, volume.scaling), canonicalGeometry(transform).spacing)
  const input = normaliseIntensities(resampleToModelGrid(volume.data, transform, placement, volume.scaling))
  const t1 = performance.now()

  const n = MODEL_GRID_SIZE
  const feeds = { [model.session.inputNames[0] as string]: new ort.Tensor('float32', input, [1, 1, n, n, n]) }
  const results = await model.session.run(feeds)
  const output = results[model.session.outputNames[0] as string]
  if (output === undefined || output.dims[1] !== CLASS_COUNT) throw new Error(`unexpected model output ${output?.dims.join('x')}`)
  const t2 = performance.now()

  // The exported network ends in a softmax: its output is per-class probabilities.
  const probabilities = faceRegionRules(output.data as Float32Array)
  const { labels, counts: classCounts } = labelsFromModelGrid(probabilities, CLASS_COUNT, transform, placement)
  const counts = namedCounts(classCounts)
  if (isSkullStripped(counts)) relabelFaceAsHead(labels, counts)
  const t3 = performance.now()
  return {
    labels,
    counts,
    placement,
    timingsMs: { prepare: Math.round(t1 - t0), model: Math.round(t2 - t1), labels: Math.round(t3 - t2) },
  }
}

/** The runtime rules on the model grid (see keepFaceFromBrain and deepenFace), on the network's probabilities. */
function faceRegionRules(probabilities: Float32Array): Float32Array {
  const n = MODEL_GRID_SIZE
  const cells = n * n * n
  const brain = new Uint8Array(cells)
  for (let v = 0; v < cells; v++) brain[v] = (probabilities[LABELS.brain * cells + v] as number) > BRAIN_SEED_PROBABILITY ? 1 : 0
  const toBrain = distanceToMaskMm(brain, [n, n, n], [MODEL_GRID_SPACING, MODEL_GRID_SPACING, MODEL_GRID_SPACING], BRAIN_GAP_MM)
  const out = probabilities.slice()
  keepFaceFromBrain(out, toBrain)
  deepenFace(out, toBrain)
  return out
}

/**
 * The training labels keep face and ears at least 5 mm (two grid voxels) from the brain; the
 * network mostly learns that gap, and this makes it a rule: at grid points within 5 mm of a
 * point that may be brain, the face and ear probabilities go to head. Done on the 96^3 grid, it
 * costs a few milliseconds, and the labels still come back smooth.
 */
function keepFaceFromBrain(probabilities: Float32Array, toBrain: Float32Array): void {
  const cells = toBrain.length
  for (let v = 0; v < cells; v++) {
    if ((toBrain[v] as number) > BRAIN_GAP_MM) continue
    const moved = (probabilities[LABELS.face * cells + v] as number) + (probabilities[LABELS.ears * cells + v] as number)
    probabilities[LABELS.face * cells + v] = 0
    probabilities[LABELS.ears * cells + v] = 0
    probabilities[LABELS.head * cells + v] = (probabilities[LABELS.head * cells + v] as number) + moved
  }
}

/**
 * The face region goes FACE_DEPTH_MM deeper into the head than the network puts it, never nearer
 * the brain than the gap. The template face masks the network learnt from stop at the front of
 * the facial bones: with only that removed, the surface left behind (orbits, nasal cavity, the
 * cut edge) still showed a face to the detector on 5 of the 22 real scans, from one view each.
 * Head tissue within FACE_DEPTH_MM of the face is called face: its head probability moves to face.
 */
function deepenFace(probabilities: Float32Array, toBrain: Float32Array): void {
  const n = MODEL_GRID_SIZE
  const cells = toBrain.length
  const winner = (v: number) => {
    let best = 0
    for (let c = 1; c < CLASS_COUNT; c++) if ((probabilities[c * cells + v] as number) > (probabilities[best * cells + v] as number)) best = c
    return best
  }
  const face = new Uint8Array(cells)
  const head = new Uint8Array(cells)
  for (let v = 0; v < cells; v++) {
    const label = winner(v)
    face[v] = label === LABELS.face ? 1 : 0
    head[v] = label === LABELS.head ? 1 : 0
  }
  const toFace = distanceToMaskMm(face, [n, n, n], [MODEL_GRID_SPACING, MODEL_GRID_SPACING, MODEL_GRID_SPACING], FACE_DEPTH_MM)
  for (let v = 0; v < cells; v++) {
    if (!head[v] || (toFace[v] as number) > FACE_DEPTH_MM || (toBrain[v] as number) <= BRAIN_GAP_MM) continue
    probabilities[LABELS.face * cells + v] = (probabilities[LABELS.face * cells + v] as number) + (probabilities[LABELS.head * cells + v] as number)
    probabilities[LABELS.head * cells + v] = 0
  }
}

/**
 * On a skull-stripped scan the network can still call the frontal lobe's underside "face"; with
 * no head around the brain there is no face to remove, and removing brain would be the one thing
 * unface must never do.
 */
function isSkullStripped(counts: Record<LabelName, number>): boolean {
  return counts.brain > 0 && (counts.head + counts.face + counts.ears) / counts.brain < SKULL_STRIPPED_TISSUE_RATIO
}

function relabelFaceAsHead(labels: Uint8Array, counts: Record<LabelName, number>): void {
  for (let i = 0; i < labels.length; i++) if (labels[i] === LABELS.face || labels[i] === LABELS.ears) labels[i] = LABELS.head
  counts.head += counts.face + counts.ears
  counts.face = 0
  counts.ears = 0
}

/** Voxels per label of a label map made elsewhere (the mask of another image on the same grid). */
export function countLabels(labels: Uint8Array): Record<LabelName, number> {
  const counts = new Array<number>(CLASS_COUNT).fill(0)
  // An indexed loop: iterating a 16.8M-voxel array with for-of took about 0.1 s per scan.
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as number
    if (label < CLASS_COUNT) counts[label] = (counts[label] as number) + 1
  }
  return namedCounts(counts)
}

function namedCounts(counts: number[]): Record<LabelName, number> {
  const names = Object.keys(LABELS) as LabelName[]
  return Object.fromEntries(names.map((name) => [name, counts[LABELS[name]] as number])) as Record<LabelName, number>
}
