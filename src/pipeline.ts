/**
 * The stages composed, and nothing else: read, segment, deface, verify, report, write. Each
 * stage is a function over a Volume; this file decides only the order, what is timed, and
 * whether the result may be released.
 */
import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Volume } from './io/volume.js'
import { withVoxels } from './io/volume.js'
import { UnfaceError } from './io/errors.js'
import { readVolume, type ReadOptions } from './io/read-volume.js'
import { assertWritable, encodeVolume, writeVolume } from './io/write-volume.js'
import { assertWritableDirectory } from './io/atomic-file.js'
import { formatOfPath, stripVolumeExtension } from './io/format.js'
import { volumeInfo, type VolumeInfo } from './io/volume-info.js'
import { countLabels, loadSegmentationModel, segmentHead, type LabelName, type SegmentationModel } from './segment/segment-head.js'
import { DEFAULT_DEFACE_SETTINGS, defaceVolume, type DefaceMode, type DefaceOutcome } from './deface/deface-volume.js'
import { renderBeforeAfter } from './verify/verify-face-removed.js'
import { startFaceCheckThread, type FaceCheckThread } from './verify/face-check-thread.js'
import type { DefaceReport } from './report/deface-report.js'
import { buildReport } from './report/build-report.js'
import { reportFilesFor, writeReport, type ReportFiles } from './report/write-report.js'
import { reportMontage, type MontageImage } from './report/report-montage.js'
import { sagittalOverlay } from './report/slice-overlay.js'

/** The networks, loaded once and shared by every file a process defaces. */
export interface Models {
  segmentation: SegmentationModel
  /** Absent when verification is off. */
  faceCheck?: FaceCheckThread
}

export interface LoadModelsOptions {
  verify?: boolean
  segmentationModelPath?: string
  threads?: number
}

/** Both networks ready; fails if either cannot be loaded. */
export async function loadModels(options: LoadModelsOptions = {}): Promise<Models> {
  const models = await startModels(options)
  try {
    await models.faceCheck?.ready
  } catch (error) {
    await closeModels(models)
    throw error
  }
  return models
}

/** Stops the face check's thread and frees the network session. */
async function closeModels(models: Models): Promise<void> {
  await Promise.all([models.faceCheck?.close(), models.segmentation.session.release()])
}

/**
 * The segmentation network loaded and the face check's thread started, still loading its
 * networks: a one-off deface segments meanwhile (about 0.5 s sooner on two cores), and a face check
 * that fails to load fails the verification, so nothing is released unverified.
 */
async function startModels(options: LoadModelsOptions): Promise<Models> {
  const faceCheck = options.verify === false ? undefined : startFaceCheckThread()
  try {
    const segmentation = await loadSegmentationModel(options.segmentationModelPath, options.threads === undefined ? {} : { threads: options.threads })
    return faceCheck === undefined ? { segmentation } : { segmentation, faceCheck }
  } catch (error) {
    await faceCheck?.close()
    throw error
  }
}

export interface DefaceOptions extends ReadOptions {
  /** Where to write; by default beside the input, named <input>_defaced with the input's format. */
  output?: string
  /** Replace an existing output file. */
  force?: boolean
  /** Allow the output to be the input itself. */
  inPlace?: boolean
  /** Keep identifying header text (NIfTI descrip, aux_file, intent_name, db_name, extensions). */
  keepHeaderText?: boolean
  /** `remove` (default) sets the face to background; `blur` smooths it and adds noise. */
  mode?: DefaceMode
  /** Also remove the ears. */
  ears?: boolean
  /** Nothing within this many mm of the brain is changed (default 5). */
  brainMarginMm?: number
  /** Verify that no face remains before releasing the output (default true). */
  verify?: boolean
  /** On a failed verification, keep the defaced volume at quarantinePath(output) for review. */
  keepFailed?: boolean
  /** Write the report (JSON, PNG montage, HTML page) into this directory. */
  reportDir?: string
  /** Labels to use instead of segmenting this volume (the mask of another image on the same grid). */
  labels?: Uint8Array
  /** Preloaded models; loaded for this call when absent. */
  models?: Models
  /** Called as each stage starts, for progress display. */
  onStage?: (stage: string) => void
}

export interface DefaceResult extends DefaceReport {
  /** The labels the volume was defaced with, for applying them to other images on its grid. */
  labels: Uint8Array
  reportFiles?: ReportFiles
  /** The report's montage as pixels, for callers that make pictures of their own from it (the dataset report's thumbnails). */
  montage?: MontageImage
}

export async function defaceFile(input: string, options: DefaceOptions = {}): Promise<DefaceResult> {
  const given = options.models
  if (given !== undefined) return defaceWith(input, options, async () => given)
  let started: Promise<Models> | undefined
  try {
    return await defaceWith(input, options, () => (started = startModels({ verify: options.verify !== false })))
  } finally {
    // A one-off call owns the models it started: their threads must not outlive the call.
    const models = await started?.catch(() => undefined)
    if (models !== undefined) await closeModels(models)
  }
}

async function defaceWith(input: string, options: DefaceOptions, load: () => Promise<Models>): Promise<DefaceResult> {
  const output = options.output ?? defaultOutputPath(input)
  const overwrite = options.force === true || options.inPlace === true
  const verify = options.verify !== false
  if ((await samePath(input, output)) && options.inPlace !== true) {
    throw new UnfaceError('output is the input itself (use --in-place to overwrite it)', { file: output })
  }
  await assertWritable(output, { overwrite })
  if (options.keepFailed === true) await assertWritable(quarantinePath(output), { overwrite: true })
  if (options.reportDir !== undefined) await assertWritableDirectory(options.reportDir)
  const timingsMs: Record<string, number> = {}
  const timed = stageTimer(timingsMs, options.onStage)

  const settings = {
    mode: options.mode ?? DEFAULT_DEFACE_SETTINGS.mode,
    brainMarginMm: options.brainMarginMm ?? DEFAULT_DEFACE_SETTINGS.brainMarginMm,
    ears: options.ears ?? DEFAULT_DEFACE_SETTINGS.ears,
  }
  // The networks load on their own threads while this one reads the volume.
  const loading = options.models === undefined ? timed('load models', load) : load()
  loading.catch(() => undefined)
  const volume = await timed('read', () => readVolume(input, options))
  const models = await loading
  const faceCheck = verify ? models.faceCheck : undefined
  // Verification asked for but impossible must stop here, never fall through to an unverified release.
  if (verify && faceCheck === undefined) throw new UnfaceError('cannot verify: the models were loaded without the face check', { file: input })
  // From here the original's renders and face detections run on the face check's own thread.
  const pending = faceCheck?.observe(volume)
  let labels: Uint8Array
  let labelCounts: Record<LabelName, number>
  let defaced: DefaceOutcome
  try {
    if (options.labels === undefined) {
      const segmentation = await timed('segment', () => segmentHead(volume, models.segmentation))
      labels = segmentation.labels
      labelCounts = segmentation.counts
    } else {
      labels = options.labels
      if (labels.length !== volume.data.length) {
        throw new UnfaceError(`the mask given has ${labels.length} voxels, the volume ${volume.data.length}`, { file: input })
      }
      labelCounts = countLabels(labels)
    }
    const mask = labels
    defaced = await timed('deface', async () => defaceVolume(volume, mask, settings))
  } catch (error) {
    if (pending !== undefined) faceCheck?.forget(pending)
    throw error
  }
  const outcome = defaced
  // The output is encoded while the verdict is awaited; it is written only if the verdict allows.
  const encoded = encodeVolume(outcome.volume, output, { keepHeaderText: options.keepHeaderText === true })
  encoded.catch(() => undefined)
  const verifying = faceCheck === undefined || pending === undefined ? undefined : timed('verify', () => faceCheck.verify(pending, volume, outcome.volume))
  verifying?.catch(() => undefined)
  // The report's slice needs only the defacing: it is drawn while the face check's thread renders.
  const reportDir = options.reportDir
  const slice = reportDir === undefined ? undefined : sagittalOverlay(volume, outcome.weight, labels)
  const verification = await verifying
  if (verification !== undefined) for (const [step, ms] of Object.entries(verification.timingsMs)) timingsMs[`verify.${step}`] = ms

  const released = verification === undefined || verification.release
  const quarantine = !released && options.keepFailed === true ? quarantinePath(output) : undefined
  const destination = released ? output : quarantine
  const notes = [...volume.source.notes]
  if (destination !== undefined) {
    await timed('write', async () => {
      const ready = await encoded
      await ready.writeTo(destination, { overwrite: overwrite || destination === quarantine })
      notes.push(...ready.notes)
    })
  }
  const report = await buildReport({
    volume,
    labelCounts,
    defaced,
    settings: { ...settings, verify },
    verification,
    models,
    ...(released ? { output } : {}),
    ...(quarantine === undefined ? {} : { quarantine }),
    timingsMs,
    notes,
  })
  if (reportDir === undefined || slice === undefined) return { ...report, labels }
  const reportFiles = reportFilesFor(input, reportDir)
  const montage = await timed('report', async () => {
    const { before, after } = verification ?? renderBeforeAfter(volume, defaced.volume)
    const { png, image } = await reportMontage(before, after, slice)
    await writeReport(report, png, reportFiles)
    return image
  })
  return { ...report, labels, reportFiles, montage }
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

/** Where --keep-failed puts a volume that failed verification: never under the name asked for. */
export function quarantinePath(output: string): string {
  const format = formatOfPath(output)
  return `${stripVolumeExtension(output)}.FAILED-VERIFICATION${format?.extension ?? ''}`
}

async function samePath(a: string, b: string): Promise<boolean> {
  const canonical = async (p: string) => realpath(p).catch(() => resolve(p))
  return (await canonical(a)) === (await canonical(b))
}
