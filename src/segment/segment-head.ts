/**
 * The segmentation stage: one small ONNX network labels background, head, face, ears and brain
 * on any head scan. The volume goes to the canonical RAS layout (exact), is resampled to the
 * model grid, and the model's probabilities come back to every input voxel.
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import * as ort from 'onnxruntime-node'
import type { Vec3, Volume } from '../io/volume.js'
import { realIntensities } from '../io/volume.js'
import { UnfaceError } from '../io/errors.js'
import { canonicalTransformOf, canonicalGeometry, fromCanonicalVoxels, toCanonicalVoxels } from '../io/canonical-grid.js'
import {
  MODEL_GRID_SIZE,
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
  })
  return { session, path }
}

export async function segmentHead(volume: Volume, model: SegmentationModel): Promise<Segmentation> {
  const t0 = performance.now()
  const transform = canonicalTransformOf(volume)
  const canonical = canonicalGeometry(transform)
  const intensities = toCanonicalVoxels(realIntensities(volume), transform)
  const placement = placeGrid(headCentreMm(intensities, canonical.size, canonical.spacing), canonical.spacing)
  const input = normaliseIntensities(resampleToModelGrid(intensities, canonical.size, placement))
  const t1 = performance.now()

  const n = MODEL_GRID_SIZE
  const feeds = { [model.session.inputNames[0] as string]: new ort.Tensor('float32', input, [1, 1, n, n, n]) }
  const results = await model.session.run(feeds)
  const output = results[model.session.outputNames[0] as string]
  if (output === undefined || output.dims[1] !== CLASS_COUNT) throw new Error(`unexpected model output ${output?.dims.join('x')}`)
  const t2 = performance.now()

  // The exported network ends in a softmax: its output is per-class probabilities.
  const probabilities = output.data as Float32Array
  const canonicalLabels = labelsFromModelGrid(probabilities, CLASS_COUNT, canonical.size as Vec3, placement)
  const labels = fromCanonicalVoxels(canonicalLabels, transform)
  const t3 = performance.now()
  return {
    labels,
    counts: countLabels(labels),
    placement,
    timingsMs: { prepare: Math.round(t1 - t0), model: Math.round(t2 - t1), labels: Math.round(t3 - t2) },
  }
}

function countLabels(labels: Uint8Array): Record<LabelName, number> {
  const counts = new Array<number>(CLASS_COUNT).fill(0)
  for (const label of labels) counts[label] = (counts[label] as number) + 1
  const names = Object.keys(LABELS) as LabelName[]
  return Object.fromEntries(names.map((name) => [name, counts[LABELS[name]] as number])) as Record<LabelName, number>
}
