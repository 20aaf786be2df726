/**
 * The command lines of `unface dataset` and `unface merge-manifests`: arguments to library calls
 * (src/batch/run-dataset.ts, src/batch/merge.ts), events to progress, results to exit codes.
 */
import { parseArgs } from 'node:util'
import { ExitCode, UsageError } from '../io/errors.js'
import { DEFAULT_MAX_VOXELS } from '../io/limits.js'
import { ANATOMICAL_SUFFIXES } from './bids.js'
import { runDataset } from './run-dataset.js'
import { mergeManifests } from './merge.js'
import { datasetProgress } from './progress.js'
import { parseShard } from './shard.js'
import { defaultJobs } from './pool.js'

export interface Streams {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream | NodeJS.WritableStream
}

export const DATASET_USAGE = `  unface dataset IN_DIR OUT_DIR [--mask-from T1w] [--jobs N] [--shard K/N] [options]
  unface merge-manifests DIR... [-o OUT_DIR] [--json]`

export const DATASET_HELP = `Usage:
${DATASET_USAGE}

dataset   Deface a whole dataset into OUT_DIR, a full copy of IN_DIR in which:
          - the images are defaced and verified (only PASS and NO-FACE are released; an image
            that fails verification or cannot be read is recorded and left out);
          - JSON sidecars lose identifying fields (names, IDs, dates, site, scanner serial) and
            the sidecar of a defaced image says how it was defaced ("UnfaceDefacing");
          - dataset_description.json gets a GeneratedBy entry;
          - every other file is copied byte for byte (DICOM files are refused, not copied).
          For a BIDS dataset (IN_DIR holds dataset_description.json or sub-* folders) the images
          are sub-*/[ses-*/]anat/*_<suffix>.nii[.gz] for the anatomical suffixes
          (${ANATOMICAL_SUFFIXES.slice(0, 8).join(', ')}, ...), plus --include. For any other
          folder, every .nii, .nii.gz, .nrrd, .nhdr, .mha and .mhd file, at any depth.
          It writes OUT_DIR/unface-manifest.jsonl (one row per image, sorted), OUT_DIR/unface-report.html
          (thumbnails, failures first) and per-image reports under OUT_DIR/derivatives/unface/.
          A run that is stopped, even killed, and started again goes on where it stopped.
merge-manifests
          Combine the shard manifests of a --shard run found in the DIRs into DIR/unface-manifest.jsonl
          and DIR/unface-report.html (the first DIR, or -o OUT_DIR). Every shard must be present.

Options of dataset:
      --include PATTERN    Also deface files matching PATTERN (a glob relative to IN_DIR, e.g.
                           'derivatives/**/*_T1w.nii.gz'; repeatable). A pattern without '/'
                           matches file names at any depth.
      --exclude PATTERN    Leave files matching PATTERN out entirely: neither defaced nor copied
                           (repeatable; e.g. 'sourcedata/**').
      --participant-label L...
                           Only these subjects (01 or sub-01; several after one flag, or repeat it).
                           Other subjects are neither defaced nor copied.
      --mask-from SUFFIX   Segment the SUFFIX image (e.g. T1w) of each folder once and apply its
                           label map to the other images of that folder that are on the same
                           voxel grid; the others are segmented on their own. Every image is
                           still verified on its own.
  -j, --jobs N             Worker processes, each loading the models once (default: ${defaultJobs()}: one per
                           core, at most one per GB of memory).
      --shard K/N          Do only shard K of N (by a hash of each path; a --mask-from folder stays
                           in one shard). Writes unface-manifest.shard-K-of-N.jsonl.
      --layout L           auto (default), bids or plain.
      --mode MODE          remove (default) or blur.
      --ears               Also remove the ears.
      --brain-margin MM    Change nothing within MM mm of the brain (default 5).
      --no-verify          Skip the render-based check (images are released UNVERIFIED).
      --retry-failed       Redo images recorded as failed verification or error.
      --force              Redo every image, even those already done.
      --max-voxels N       Refuse volumes larger than N voxels (default ${DEFAULT_MAX_VOXELS}).
      --json               JSON lines on stdout: a "plan", one "file" per image, a "summary".
      --debug              Show the workers' output and stack traces.

Progress: a bar with the rate and ETA on a terminal (stderr); one line per image when stderr is
piped; with --json, only JSON on stdout.

Exit codes of dataset and merge-manifests:
  0  every image was released (PASS, NO-FACE, or UNVERIFIED with --no-verify)
  1  an image or another file could not be processed (it is recorded; the others were done),
     or the run itself could not start (bad folder, models missing)
  2  usage error
  3  no errors, but at least one image failed verification and was not released
`

const DATASET_OPTIONS = {
  include: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  'participant-label': { type: 'string', multiple: true },
  'mask-from': { type: 'string' },
  jobs: { type: 'string', short: 'j' },
  shard: { type: 'string' },
  layout: { type: 'string' },
  mode: { type: 'string' },
  ears: { type: 'boolean' },
  'brain-margin': { type: 'string' },
  'no-verify': { type: 'boolean' },
  'retry-failed': { type: 'boolean' },
  force: { type: 'boolean' },
  'max-voxels': { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

const MERGE_OPTIONS = {
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export async function runDatasetCommand(argv: string[], streams: Streams): Promise<number> {
  const parsed = parseDataset(argv)
  const { values } = parsed
  if (values.help === true) {
    streams.stdout.write(DATASET_HELP)
    return ExitCode.ok
  }
  // BIDS apps take `--participant-label 01 02`: positionals right after the flag are labels too.
  const labels = [...(values['participant-label'] ?? [])]
  const positionals: string[] = []
  let afterLabel = false
  for (const token of parsed.tokens ?? []) {
    if (token.kind === 'option') afterLabel = token.name === 'participant-label'
    else if (token.kind === 'positional') {
      if (afterLabel) labels.push(token.value)
      else positionals.push(token.value)
    }
  }
  const [input, output, ...extra] = positionals
  if (input === undefined) throw new UsageError('dataset: missing input folder (try: unface dataset --help)')
  if (output === undefined) throw new UsageError('dataset: missing output folder (try: unface dataset --help)')
  if (extra.length > 0) throw new UsageError(`dataset: unexpected argument '${extra[0]}'`)
  const participants = labels.flatMap((l) => l.split(',')).map((l) => l.trim().replace(/^sub-/, '')).filter((l) => l !== '')
  const layout = values.layout ?? 'auto'
  if (layout !== 'auto' && layout !== 'bids' && layout !== 'plain') throw new UsageError(`--layout must be auto, bids or plain, got '${layout}'`)
  const mode = values.mode ?? 'remove'
  if (mode !== 'remove' && mode !== 'blur') throw new UsageError(`--mode must be remove or blur, got '${mode}'`)
  const maskFrom = values['mask-from']
  if (maskFrom !== undefined && !/^[A-Za-z0-9]+$/.test(maskFrom)) throw new UsageError(`--mask-from needs a BIDS suffix such as T1w, got '${maskFrom}'`)

  const json = values.json === true
  const progress = datasetProgress(streams, json)
  try {
    const summary = await runDataset({
      input,
      output,
      layout,
      include: values.include ?? [],
      exclude: values.exclude ?? [],
      participants,
      ...(maskFrom === undefined ? {} : { maskFrom }),
      ...(values.jobs === undefined ? {} : { jobs: count(values.jobs, '--jobs') }),
      ...(values.shard === undefined ? {} : { shard: parseShard(values.shard) }),
      mode,
      ears: values.ears === true,
      ...(values['brain-margin'] === undefined ? {} : { brainMarginMm: millimetres(values['brain-margin'], '--brain-margin') }),
      verify: values['no-verify'] !== true,
      retryFailed: values['retry-failed'] === true,
      force: values.force === true,
      ...(values['max-voxels'] === undefined ? {} : { maxVoxels: count(values['max-voxels'], '--max-voxels') }),
      onEvent: (event) => progress.event(event),
      ...(values.debug === true ? { onWorkerOutput: (text: string) => void streams.stderr.write(text) } : {}),
    })
    return summary.exitCode
  } finally {
    progress.done()
  }
}

export async function runMergeCommand(argv: string[], streams: Streams): Promise<number> {
  const { values, positionals } = parseMerge(argv)
  if (values.help === true) {
    streams.stdout.write(DATASET_HELP)
    return ExitCode.ok
  }
  if (positionals.length === 0) throw new UsageError('merge-manifests: missing folder (try: unface dataset --help)')
  const result = await mergeManifests(positionals, values.output)
  const c = result.counts
  if (values.json === true) streams.stdout.write(`${JSON.stringify(result)}\n`)
  else {
    streams.stderr.write(
      `unface: merged ${result.shards.length} manifest(s): ${c.total} images: ${c.passed} passed, ${c.failed} failed verification, ${c.noFace} no face, ${c.errors} errors\n` +
        `unface: manifest ${result.manifest}\nunface: report ${result.report}\n`,
    )
  }
  return c.errors > 0 ? ExitCode.error : c.failed > 0 ? ExitCode.verificationFailed : ExitCode.ok
}

function parseDataset(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: DATASET_OPTIONS, allowPositionals: true, strict: true, tokens: true })
  } catch (error) {
    throw usage(error)
  }
}

function parseMerge(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: MERGE_OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    throw usage(error)
  }
}

function usage(error: unknown): UsageError {
  return new UsageError(`${(error as Error).message.split('\n')[0]} (try: unface dataset --help)`)
}

function count(text: string, flag: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`${flag} needs a positive whole number, got '${text}'`)
  return value
}

function millimetres(text: string, flag: string): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`${flag} needs a distance in mm (0 or more), got '${text}'`)
  return value
}
