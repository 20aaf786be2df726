/**
 * One unit of dataset work, as a worker does it: deface each image (with the --mask-from
 * reference's labels when it is on the same grid), write its scrubbed sidecar and a thumbnail,
 * and return one manifest row per image. Every file is written atomically, and the row is made
 * only after all of them are in place, so a row always describes files that exist.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import { defaceFile, type DefaceResult, type Models } from '../pipeline.js'
import { writeFileAtomically } from '../io/atomic-file.js'
import { readVolume } from '../io/read-volume.js'
import { stripVolumeExtension } from '../io/format.js'
import { segmentHead } from '../segment/segment-head.js'
import { toolIdentity } from '../report/provenance.js'
import { reportFilesFor } from '../report/write-report.js'
import type { Geometry } from '../io/volume.js'
import { sidecarPathOf } from './bids.js'
import type { UnitImage } from './discover.js'
import { gridDifference, readGeometry } from './grid.js'
import type { ManifestRow } from './manifest.js'
import type { ModelIdentity, RunContext, UnitJob } from './protocol.js'
import { PROVENANCE_FIELD, scrubSidecar, type DefacingProvenance } from './sidecar.js'
import { montageThumbnail } from './thumbnail.js'

/** Per-image reports, thumbnails and run logs go under OUT_DIR/derivatives/unface/, mirroring the input tree. */
export const REPORT_ROOT = 'derivatives/unface'

export function thumbnailPathOf(relInput: string): string {
  return `${REPORT_ROOT}/${stripVolumeExtension(relInput)}_unface_thumb.jpg`
}

export function reportPathsOf(relInput: string): { json: string; png: string; html: string } {
  return reportFilesFor(relInput, posix.join(REPORT_ROOT, posix.dirname(relInput)))
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

interface Reference {
  input: string
  labels?: Uint8Array
  geometry?: Geometry
  /** Why the reference's mask cannot be used, when it cannot. */
  unusable?: string
}

export async function processUnit(
  job: UnitJob,
  context: RunContext,
  models: Models,
  identity: ModelIdentity,
  events: { start(input: string): void; row(row: ManifestRow): void; stage?: (stage: string) => void },
): Promise<void> {
  const { unit } = job
  let reference: Reference | undefined
  for (const image of unit.images) {
    const isReference = image.input === unit.reference
    if (!job.todo.includes(image.input)) {
      if (isReference && unit.images.some((other) => other !== image && job.todo.includes(other.input))) {
        reference = await recomputeReference(image.input, context, models, job.referenceReleased === true)
      }
      continue
    }
    events.start(image.input)
    // For the test of a worker that dies mid-image (src/batch/dataset.test.ts); never set otherwise.
    if (process.env.UNFACE_TEST_WORKER_DIES_ON === image.input) process.kill(process.pid, 'SIGKILL')
    let mask: ManifestRow['mask'] = { source: 'self' }
    let labels: Uint8Array | undefined
    if (!isReference && reference !== undefined) {
      const chosen = await chooseMask(image.input, reference, context)
      mask = chosen.mask
      labels = chosen.labels
    }
    const outcome = await defaceImage(image, context, models, identity, mask, labels, events.stage)
    if (isReference) reference = await referenceFrom(image.input, outcome.result, context)
    events.row(outcome.row)
  }
}

async function recomputeReference(input: string, context: RunContext, models: Models, released: boolean): Promise<Reference> {
  if (!released) return { input, unusable: `${input} was not released, so its mask was not used` }
  try {
    const volume = await readVolume(join(context.inRoot, input), maxVoxelsOption(context))
    const { labels } = await segmentHead(volume, models.segmentation)
    const { size, spacing, origin, direction } = volume
    return { input, labels, geometry: { size, spacing, origin, direction } }
  } catch (error) {
    return { input, unusable: `the mask of ${input} could not be recomputed (${oneLine(error, context)})` }
  }
}

async function referenceFrom(input: string, result: DefaceResult | undefined, context: RunContext): Promise<Reference> {
  if (result === undefined) return { input, unusable: `${input} could not be defaced, so its mask was not used` }
  // The same words as on a resumed run, which knows only that it was not released: its own row has the verdict.
  if (!result.released) return { input, unusable: `${input} was not released, so its mask was not used` }
  try {
    return { input, labels: result.labels, geometry: await readGeometry(join(context.inRoot, input)) }
  } catch (error) {
    return { input, unusable: `the grid of ${input} could not be read (${oneLine(error, context)})` }
  }
}

async function chooseMask(input: string, reference: Reference, context: RunContext): Promise<{ mask: ManifestRow['mask']; labels?: Uint8Array }> {
  if (reference.labels === undefined || reference.geometry === undefined) {
    return { mask: { source: 'self', note: reference.unusable ?? `no mask from ${reference.input}` } }
  }
  let geometry: Geometry
  try {
    geometry = await readGeometry(join(context.inRoot, input))
  } catch (error) {
    // Defacing on its own will report the problem with the file properly.
    return { mask: { source: 'self', note: `its grid could not be read (${oneLine(error, context)})` } }
  }
  const difference = gridDifference(reference.geometry, geometry)
  if (difference !== undefined) return { mask: { source: 'self', note: `not on the voxel grid of ${reference.input}: ${difference}` } }
  return { mask: { source: 'mask-from', from: reference.input }, labels: reference.labels }
}

async function defaceImage(
  image: UnitImage,
  context: RunContext,
  models: Models,
  identity: ModelIdentity,
  mask: ManifestRow['mask'],
  labels: Uint8Array | undefined,
  onStage: ((stage: string) => void) | undefined,
): Promise<{ row: ManifestRow; result?: DefaceResult }> {
  const started = performance.now()
  const timingsMs: Record<string, number> = {}
  const tool = await toolIdentity()
  const inputPath = join(context.inRoot, image.input)
  const outputPath = join(context.outRoot, image.input)
  const sidecarOut = sidecarPathOf(image.input)
  const reports = reportPathsOf(image.input)
  const base: ManifestRow = {
    input: image.input,
    inputSha256: null,
    inputBytes: null,
    output: null,
    outputSha256: null,
    outputBytes: null,
    verdict: 'ERROR',
    released: false,
    reasons: [],
    voxels: null,
    mask,
    sidecar: null,
    report: null,
    settings: context.settings,
    tool: { name: tool.name, version: tool.version, codeSha256: tool.codeSha256 },
    models: { segmentationSha256: identity.segmentationSha256, faceCheckSha256: identity.faceCheckSha256 },
    timingsMs,
  }
  let result: DefaceResult | undefined
  try {
    base.inputBytes = (await stat(inputPath)).size
    base.inputSha256 = await timed(timingsMs, 'hash', () => sha256OfFile(inputPath))
    // Read the sidecar first: a sidecar that cannot be scrubbed stops the image before anything is written.
    const sidecarText = image.sidecar === undefined ? (context.layout === 'bids' ? '{}' : undefined) : await readFile(join(context.inRoot, image.sidecar), 'utf8')
    if (sidecarText !== undefined) {
      try {
        scrubSidecar(sidecarText)
      } catch (error) {
        throw new Error(`${image.sidecar ?? sidecarOut}: cannot be scrubbed (${(error as Error).message})`)
      }
    }
    await mkdir(dirname(outputPath), { recursive: true })
    const { settings } = context
    result = await defaceFile(inputPath, {
      output: outputPath,
      force: true,
      mode: settings.mode,
      ears: settings.ears,
      brainMarginMm: settings.brainMarginMm,
      verify: settings.verify,
      models,
      reportDir: join(context.outRoot, posix.dirname(reports.json)),
      ...(labels === undefined ? {} : { labels }),
      ...maxVoxelsOption(context),
      ...(onStage === undefined ? {} : { onStage }),
    })
    Object.assign(timingsMs, result.timingsMs)
    const row: ManifestRow = {
      ...base,
      verdict: result.verdict,
      released: result.released,
      reasons: result.reasons,
      voxels: result.voxels,
      models: { segmentationSha256: result.models.segmentation.sha256, faceCheckSha256: result.models.faceCheck?.sha256 ?? null },
    }
    const { montage } = result
    if (montage !== undefined) {
      const thumbnail = thumbnailPathOf(image.input)
      await timed(timingsMs, 'thumbnail', async () =>
        writeFileAtomically(join(context.outRoot, thumbnail), await montageThumbnail(montage), { overwrite: true }),
      )
      row.report = { ...reports, thumbnail }
    }
    if (result.released) {
      row.output = image.input
      row.outputSha256 = await timed(timingsMs, 'hash output', () => sha256OfFile(outputPath))
      row.outputBytes = (await stat(outputPath)).size
      if (sidecarText !== undefined) {
        const provenance: DefacingProvenance = {
          Tool: 'unface',
          Version: tool.version,
          CodeSha256: tool.codeSha256,
          SegmentationModelSha256: result.models.segmentation.sha256,
          Mode: settings.mode,
          Ears: settings.ears,
          BrainMarginMm: settings.brainMarginMm,
          Verified: settings.verify,
          Verdict: result.verdict,
          MaskSource: mask.source === 'mask-from' ? (mask.from as string) : 'self',
        }
        const scrubbed = scrubSidecar(sidecarText, provenance)
        await writeFileAtomically(join(context.outRoot, sidecarOut), scrubbed.text, { overwrite: true })
        row.sidecar = { output: sidecarOut, removedFields: scrubbed.removed }
      }
    } else {
      await removeStale(context, image.input, sidecarOut)
    }
    timingsMs.total = Math.round(performance.now() - started)
    return { row, result }
  } catch (error) {
    await removeStale(context, image.input, sidecarOut).catch(() => {})
    const message = oneLine(error, context)
    timingsMs.total = Math.round(performance.now() - started)
    return { row: { ...base, reasons: [message], error: message }, ...(result === undefined ? {} : { result }) }
  }
}

/** Nothing unreleased may stay in the output dataset, not even from an earlier run with other settings. */
async function removeStale(context: RunContext, relImage: string, relSidecar: string): Promise<void> {
  await rm(join(context.outRoot, relImage), { force: true })
  await rm(join(context.outRoot, relSidecar), { force: true })
}

function maxVoxelsOption(context: RunContext): { maxVoxels?: number } {
  return context.maxVoxels === undefined ? {} : { maxVoxels: context.maxVoxels }
}

async function timed<T>(timings: Record<string, number>, name: string, work: () => Promise<T>): Promise<T> {
  const start = performance.now()
  const value = await work()
  timings[name] = Math.round(performance.now() - start)
  return value
}

/** The error's first line, with the run's own folders taken out so rows read the same wherever the run was. */
export function oneLine(error: unknown, context: Pick<RunContext, 'inRoot' | 'outRoot'>): string {
  const text = error instanceof Error ? error.message : String(error)
  const first = text.split('\n')[0] ?? ''
  return first.split(`${context.inRoot}/`).join('').split(`${context.outRoot}/`).join('')
}

export { PROVENANCE_FIELD }
