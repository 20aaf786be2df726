/**
 * The stages composed, and nothing else: read, (segment, deface, verify, report come in later
 * stages), write.
 */
import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Volume } from './io/volume.js'
import { withVoxels } from './io/volume.js'
import { UnfaceError } from './io/errors.js'
import { readVolume, type ReadOptions } from './io/read-volume.js'
import { assertWritable, writeVolume } from './io/write-volume.js'
import { formatOfPath, stripVolumeExtension } from './io/format.js'
import { volumeInfo, type VolumeInfo } from './io/volume-info.js'
import { loadSegmentationModel, segmentHead, type LabelName } from './segment/segment-head.js'

export interface DefaceOptions extends ReadOptions {
  /** Where to write; by default beside the input, named <input>_defaced with the input's format. */
  output?: string
  /** Replace an existing output file. */
  force?: boolean
  /** Allow the output to be the input itself. */
  inPlace?: boolean
  /** Keep identifying header text (NIfTI descrip, aux_file, intent_name, db_name, extensions). */
  keepHeaderText?: boolean
  /** Called as each stage starts, for progress display. */
  onStage?: (stage: string) => void
}

export interface DefaceResult {
  input: string
  output: string
  /** What the tool had to do that a user should know about. */
  notes: string[]
  timingsMs: Record<string, number>
}

export async function defaceFile(input: string, options: DefaceOptions = {}): Promise<DefaceResult> {
  const output = options.output ?? defaultOutputPath(input)
  const overwrite = options.force === true || options.inPlace === true
  if ((await samePath(input, output)) && options.inPlace !== true) {
    throw new UnfaceError('output is the input itself (use --in-place to overwrite it)', { file: output })
  }
  await assertWritable(output, { overwrite })
  const timingsMs: Record<string, number> = {}
  const timed = stageTimer(timingsMs, options.onStage)
  const volume = await timed('read', () => readVolume(input, options))
  const written = await timed('write', () =>
    writeVolume(volume, output, { overwrite, keepHeaderText: options.keepHeaderText === true }),
  )
  return { input, output, notes: [...volume.source.notes, ...written.notes], timingsMs }
}

export interface MaskOptions extends ReadOptions {
  /** Where to write the label map; by default <input>_labels.nii.gz. */
  output?: string
  force?: boolean
  /** The ONNX model; by default the one shipped in models/. */
  modelPath?: string
  onStage?: (stage: string) => void
}

export interface MaskResult {
  input: string
  output: string
  /** Voxels per label (0 background, 1 head, 2 face, 3 ears, 4 brain). */
  counts: Record<LabelName, number>
  timingsMs: Record<string, number>
}

/** Writes the model's label map on the input's own grid, for QA and for users who mask themselves. */
export async function maskFile(input: string, options: MaskOptions = {}): Promise<MaskResult> {
  const output = options.output ?? `${stripVolumeExtension(input)}_labels.nii.gz`
  await assertWritable(output, { overwrite: options.force === true })
  const timingsMs: Record<string, number> = {}
  const timed = stageTimer(timingsMs, options.onStage)
  const model = await timed('load model', () => loadSegmentationModel(options.modelPath))
  const volume = await timed('read', () => readVolume(input, options))
  const segmentation = await timed('segment', () => segmentHead(volume, model))
  const labels: Volume = { ...withVoxels(volume, segmentation.labels), headerText: [] }
  delete labels.scaling
  await timed('write', () => writeVolume(labels, output, { overwrite: options.force === true }))
  for (const [step, ms] of Object.entries(segmentation.timingsMs)) timingsMs[`segment.${step}`] = ms
  return { input, output, counts: segmentation.counts, timingsMs }
}

function stageTimer(timingsMs: Record<string, number>, onStage: ((stage: string) => void) | undefined) {
  return async <T>(stage: string, work: () => Promise<T>): Promise<T> => {
    onStage?.(stage)
    const start = performance.now()
    const result = await work()
    timingsMs[stage] = Math.round(performance.now() - start)
    return result
  }
}

export async function inspectFile(input: string, options: ReadOptions = {}): Promise<VolumeInfo> {
  const volume: Volume = await readVolume(input, options)
  return volumeInfo(volume)
}

export function defaultOutputPath(input: string): string {
  const format = formatOfPath(input)
  return `${stripVolumeExtension(input)}_defaced${format?.extension ?? '.nii.gz'}`
}

async function samePath(a: string, b: string): Promise<boolean> {
  const canonical = async (p: string) => realpath(p).catch(() => resolve(p))
  return (await canonical(a)) === (await canonical(b))
}
