/**
 * The `unface` command line: argument parsing, output formatting and exit codes around the
 * library calls in src/pipeline.ts. It holds no logic of its own beyond that.
 */
import { parseArgs } from 'node:util'
import { VERSION } from '../version.js'
import { ExitCode, UnfaceError, UsageError } from '../io/errors.js'
import { itkConsoleOutput } from '../io/quiet-itk.js'
import { defaceFile, inspectFile, maskFile } from '../pipeline.js'
import type { VolumeInfo } from '../io/volume-info.js'
import { DEFAULT_MAX_VOXELS } from '../io/limits.js'
import { terminalProgress } from './progress.js'
import type { DefaceMode } from '../deface/deface-volume.js'
import { DATASET_USAGE, runDatasetCommand, runMergeCommand } from '../batch/dataset-cli.js'

export interface CliStreams {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream | NodeJS.WritableStream
}


const HELP = `unface ${VERSION}: remove the face from head MRI and CT volumes.

Usage:
  unface info IN [--json] [--series UID]
  unface deface IN [-o OUT] [options]
  unface mask IN [-o LABELS] [options]
${DATASET_USAGE}
  unface --help | --version

Commands:
  info      Print format, size, spacing, orientation, obliquity, pixel type, modality guess,
            intensity range and any identifying header text of a volume.
  deface    Find the face with the segmentation model, remove it (never the brain), render the
            skin surface of the result from 15 angles (and 5 again at a fainter skin level),
            and write OUT only if no face is found on any render and the renders cannot be
            matched to the original (verdict PASS), or
            if no face was found on the original either (NO-FACE).
  mask      Write the segmentation model's label map on IN's grid: 0 background, 1 head,
            2 face, 3 ears, 4 brain (by default IN_labels.nii.gz).
  dataset   Deface a BIDS dataset or a folder of volumes into a full copy, with a manifest and a
            review page; resumable, parallel, shardable (see: unface dataset --help).
  merge-manifests
            Combine the shard manifests of a --shard run (see: unface dataset --help).

IN is a .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file, or a directory holding a DICOM series.
OUT takes its format from its extension; by default it is IN_defaced in the input's format
(.nii.gz for DICOM input).

Options:
  -o, --output PATH      Where to write the result.
  -f, --force            Replace OUT if it exists.
      --in-place         Allow OUT to be IN (overwrites the input).
      --keep-header-text Keep NIfTI descrip, aux_file, intent_name, db_name and extensions, and
                         NRRD/MetaImage key-values. By default they are cleared, because they carry
                         names, dates and comments.
      --mode MODE        remove (default): set the face to background (0 on MR, air on CT
                         and on an MR whose air lies below 0).
                         blur: smooth the face heavily and add noise. Blurring is weaker
                         protection: published work shows blurred faces can be partly restored.
      --ears             Also remove the ears.
      --brain-margin MM  Change nothing within MM mm of the brain (default 5).
      --report DIR       Write DIR/IN_unface.{json,png,html}: verdict, scores, renders before
                         and after, the removed region on a mid-sagittal slice.
      --keep-failed      When verification fails, keep the defaced volume for review as
                         OUT with .FAILED-VERIFICATION before its extension (never as OUT).
      --no-verify        Skip the render-based check. The output is released unverified, and
                         the report says so. For people who know what they are doing.
      --series UID       For a DICOM directory holding several series: the one to read.
      --max-voxels N     Refuse volumes larger than N voxels (default ${DEFAULT_MAX_VOXELS}).
      --json             Print the result as JSON on stdout.
      --debug            Print stack traces and itk-wasm output on errors.
  -h, --help             Show this help.
  -V, --version          Show the version.

Exit codes:
  0  success
  1  bad input, unwritable output, or a processing error
  2  usage error (bad command line)
  3  verification failed: the face could not be confirmed removed; nothing was written
`

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  force: { type: 'boolean', short: 'f' },
  'in-place': { type: 'boolean' },
  'keep-header-text': { type: 'boolean' },
  mode: { type: 'string' },
  ears: { type: 'boolean' },
  'brain-margin': { type: 'string' },
  report: { type: 'string' },
  'keep-failed': { type: 'boolean' },
  'no-verify': { type: 'boolean' },
  series: { type: 'string' },
  'max-voxels': { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const

export async function runCli(argv: string[], streams: CliStreams = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let debug = argv.includes('--debug')
  try {
    const first = argv.findIndex((a) => !a.startsWith('-'))
    if (argv[first] === 'dataset') return await runDatasetCommand(argv.filter((_, i) => i !== first), streams)
    if (argv[first] === 'merge-manifests') return await runMergeCommand(argv.filter((_, i) => i !== first), streams)
    const { values, positionals } = parseCommandLine(argv)
    debug = values.debug === true
    if (values.help === true) {
      streams.stdout.write(HELP)
      return ExitCode.ok
    }
    if (values.version === true) {
      streams.stdout.write(`unface ${VERSION}\n`)
      return ExitCode.ok
    }
    const [command, input, ...extra] = positionals
    if (command === undefined) throw new UsageError('missing command (try: unface --help)')
    if (command !== 'info' && command !== 'deface' && command !== 'mask') throw new UsageError(`unknown command '${command}' (try: unface --help)`)
    if (input === undefined) throw new UsageError(`${command}: missing input file`)
    if (extra.length > 0) throw new UsageError(`${command}: unexpected argument '${extra[0]}'`)
    const readOptions = {
      ...(values.series === undefined ? {} : { seriesUid: values.series }),
      ...(values['max-voxels'] === undefined ? {} : { maxVoxels: parseCount(values['max-voxels'], '--max-voxels') }),
    }

    if (command === 'info') {
      if (values.output !== undefined) throw new UsageError('info: -o is not an option of info')
      const info = await inspectFile(input, readOptions)
      streams.stdout.write(values.json === true ? `${JSON.stringify(info, null, 2)}\n` : formatInfo(info))
      return ExitCode.ok
    }

    const output = values.output === undefined ? {} : { output: values.output }
    if (command === 'mask') {
      const result = await withProgress(streams, (onStage) => maskFile(input, { ...readOptions, ...output, force: values.force === true, onStage }))
      if (values.json === true) streams.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
      if ((streams.stderr as NodeJS.WriteStream).isTTY === true) streams.stderr.write(`unface: wrote ${result.output}\n`)
      return ExitCode.ok
    }
    // The label map and the montage's pixels are for library callers, not for a terminal.
    const { labels: _labels, montage: _montage, ...result } = await withProgress(streams, (onStage) =>
      defaceFile(input, {
        ...readOptions,
        ...output,
        force: values.force === true,
        inPlace: values['in-place'] === true,
        keepHeaderText: values['keep-header-text'] === true,
        mode: parseMode(values.mode),
        ears: values.ears === true,
        ...(values['brain-margin'] === undefined ? {} : { brainMarginMm: parseMillimetres(values['brain-margin'], '--brain-margin') }),
        verify: values['no-verify'] !== true,
        keepFailed: values['keep-failed'] === true,
        ...(values.report === undefined ? {} : { reportDir: values.report }),
        onStage,
      }),
    )
    if (values.json === true) streams.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    for (const note of result.notes) streams.stderr.write(`unface: note: ${note}\n`)
    if (!result.released) {
      const kept = result.quarantine === undefined ? 'nothing was written' : `kept for review at ${result.quarantine}`
      streams.stderr.write(`unface: ${input}: verification ${result.verdict}: ${result.reasons.join('; ') || 'no reason given'}; ${kept}\n`)
      return ExitCode.verificationFailed
    }
    // The verdict is the result a user acts on, so it is printed even when piped (unless --json).
    if (values.json !== true) {
      const what = result.faceFound ? `${result.voxels.changed} voxels changed, ${result.voxels.brainChanged} of them brain` : 'no face found, unchanged'
      streams.stdout.write(`${input}: ${result.verdict}: wrote ${result.output} (${what})\n`)
    }
    return ExitCode.ok
  } catch (error) {
    return reportError(error, streams, debug)
  }
}

async function withProgress<T>(streams: CliStreams, work: (onStage: (stage: string) => void) => Promise<T>): Promise<T> {
  const progress = terminalProgress(streams.stderr as NodeJS.WriteStream)
  try {
    return await work((stage) => progress.stage(stage))
  } finally {
    progress.done()
  }
}

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]} (try: unface --help)`)
  }
}

function parseMode(text: string | undefined): DefaceMode {
  if (text === undefined) return 'remove'
  if (text === 'remove' || text === 'blur') return text
  throw new UsageError(`--mode must be remove or blur, got '${text}'`)
}

function parseMillimetres(text: string, flag: string): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`${flag} needs a distance in mm (0 or more), got '${text}'`)
  return value
}

function parseCount(text: string, flag: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`${flag} needs a positive whole number, got '${text}'`)
  return value
}

function reportError(error: unknown, streams: CliStreams, debug: boolean): number {
  const known = error instanceof UnfaceError
  const message = known ? error.message : `internal error: ${(error as Error)?.message ?? String(error)}`
  streams.stderr.write(`unface: ${message.split('\n')[0]}\n`)
  if (debug) {
    streams.stderr.write(`${(error as Error)?.stack ?? ''}\n`)
    const cause = (error as Error)?.cause
    if (cause !== undefined) streams.stderr.write(`caused by: ${(cause as Error)?.stack ?? String(cause)}\n`)
    const itk = itkConsoleOutput()
    if (itk.length > 0) streams.stderr.write(`itk-wasm said:\n${itk.join('\n')}\n`)
  }
  return known ? error.exitCode : ExitCode.error
}

function formatInfo(info: VolumeInfo): string {
  const formats = { nifti: 'NIfTI', nrrd: 'NRRD', metaimage: 'MetaImage', dicom: 'DICOM series' }
  const rows: Array<[string, string]> = [
    ['format', formats[info.format]],
    ['size', info.size.join(' x ')],
    ['spacing', `${info.spacing.map((s) => round(s)).join(' x ')} mm`],
    ['origin', `${info.origin.map((o) => round(o)).join(', ')} mm (LPS)`],
    ['orientation', `${info.orientation} (${info.oblique ? `oblique by ${round(info.obliquityDegrees)} degrees` : 'not oblique'})`],
    ['pixel type', info.pixelType + (info.scaling ? ` (scaled: x ${round(info.scaling.slope)} + ${round(info.scaling.intercept)})` : '')],
    ['modality', `${info.modality} (guess)`],
    ['intensities', `${round(info.intensityRange[0])} .. ${round(info.intensityRange[1])}`],
  ]
  const lines = [info.path, ...rows.map(([k, v]) => `  ${k.padEnd(12)} ${v}`)]
  if (info.headerText.length === 0) lines.push(`  ${'header text'.padEnd(12)} none`)
  for (const { field, value } of info.headerText) lines.push(`  header text  ${field}: ${value}`)
  for (const note of info.notes) lines.push(`  note         ${note}`)
  return `${lines.join('\n')}\n`
}

function round(value: number): string {
  return String(Math.round(value * 1000) / 1000)
}
