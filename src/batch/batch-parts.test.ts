/** The parts of dataset mode that need no volumes: globs, sidecars, shards, discovery, the manifest. */
import { mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { globToRegExp } from './glob.js'
import { IDENTIFYING_FIELDS, PROVENANCE_FIELD, identifyingKeys, scrubSidecar, withGeneratedBy } from './sidecar.js'
import { inShard, parseShard, shardOf } from './shard.js'
import { discoverDataset, groupUnits } from './discover.js'
import { holdsVisitDates, isBidsAnatomicalImage } from './bids.js'
import { appendRow, latestRows, readManifest, type ManifestRow } from './manifest.js'
import { gridDifference } from './grid.js'
import type { Geometry } from '../io/volume.js'
import { datasetProgress, type DatasetPlanEvent, type DatasetSummary } from './progress.js'
import { runCli } from '../cli/run-cli.js'
import { defaultJobs, workerEnvironment } from './pool.js'

describe('the workers\' environment', () => {
  it('asks glibc for huge pages, after any tunables of the user\'s own, and leaves a hugetlb setting of theirs alone', () => {
    expect(workerEnvironment({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' })
    expect(workerEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1')
    expect(workerEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=0')
  })
})

describe('the default number of workers', () => {
  it('is one per core, but no more than one per GB of memory', () => {
    const GB = 2 ** 30
    expect(defaultJobs(2, 24 * GB)).toBe(2)
    expect(defaultJobs(64, 16 * GB)).toBe(16)
    expect(defaultJobs(8, 0.5 * GB)).toBe(1)
  })
})

describe('globs', () => {
  it('matches within segments, across segments with **, and names anywhere without /', () => {
    expect(globToRegExp('derivatives/**/*_T1w.nii.gz').test('derivatives/fmriprep/sub-01/anat/sub-01_T1w.nii.gz')).toBe(true)
    expect(globToRegExp('derivatives/**/*_T1w.nii.gz').test('derivatives/sub-01_T1w.nii.gz')).toBe(true)
    expect(globToRegExp('derivatives/*_T1w.nii.gz').test('derivatives/a/sub-01_T1w.nii.gz')).toBe(false)
    expect(globToRegExp('*_angio.nii.gz').test('sub-01/anat/sub-01_angio.nii.gz')).toBe(true)
    expect(globToRegExp('sub-0?/anat/*.{nii,nii.gz}').test('sub-01/anat/x.nii')).toBe(true)
    expect(globToRegExp('sub-0[12]/**').test('sub-03/anat/x.nii')).toBe(false)
    expect(globToRegExp('sourcedata/**').test('sourcedata/dicom/1.dcm')).toBe(true)
    expect(globToRegExp('a.b').test('axb')).toBe(false)
  })
})

describe('sidecars', () => {
  const original = JSON.stringify({ RepetitionTime: 2.3, PatientName: 'Doe^Jane', institutionname: 'X', Nested: { PatientID: '1', Keep: 1 } })

  it('removes every documented identifying field at any depth, whatever the case, and keeps the rest', () => {
    const result = scrubSidecar(original)
    const parsed = JSON.parse(result.text) as Record<string, unknown>
    expect(result.removed).toEqual(['PatientID', 'PatientName', 'institutionname'])
    expect(parsed).toEqual({ RepetitionTime: 2.3, Nested: { Keep: 1 } })
    expect(identifyingKeys(parsed)).toEqual([])
    for (const field of ['PatientName', 'PatientBirthDate', 'AcquisitionDateTime', 'InstitutionName', 'DeviceSerialNumber', 'StationName', 'StudyInstanceUID', 'SeriesInstanceUID', 'PatientSex', 'PatientAge']) {
      expect(IDENTIFYING_FIELDS).toContain(field)
    }
  })

  it('leaves a clean sidecar byte for byte, and adds provenance when asked', () => {
    const clean = '{"RepetitionTime":2.3}'
    expect(scrubSidecar(clean)).toEqual({ text: clean, removed: [], changed: false })
    const provenance = { Tool: 'unface', Version: '0', CodeSha256: 'c', SegmentationModelSha256: 'm', Mode: 'remove', Ears: false, BrainMarginMm: 5, Verified: true, Verdict: 'PASS', MaskSource: 'self' } as const
    const withProvenance = JSON.parse(scrubSidecar(clean, provenance).text) as Record<string, unknown>
    expect(withProvenance[PROVENANCE_FIELD]).toEqual(provenance)
    expect(() => scrubSidecar('{"a":')).toThrow()
  })

  it('are scrubbed of exactly the fields docs/dataset.md lists', async () => {
    const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'dataset.md'), 'utf8')
    const section = /<!-- identifying-fields:start -->([\s\S]*?)<!-- identifying-fields:end -->/.exec(doc)?.[1] ?? ''
    expect([...section.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1])).toEqual([...IDENTIFYING_FIELDS])
  })

  it('appends a GeneratedBy entry to dataset_description.json', () => {
    const text = withGeneratedBy(JSON.stringify({ Name: 'x', GeneratedBy: [{ Name: 'dcm2niix' }] }), { Name: 'unface', Version: '1', Description: 'd' })
    expect((JSON.parse(text) as { GeneratedBy: unknown[] }).GeneratedBy).toEqual([{ Name: 'dcm2niix' }, { Name: 'unface', Version: '1', Description: 'd' }])
  })
})

describe('visit dates in BIDS tables', () => {
  it('are found in the acq_time column of scans and sessions tables only', () => {
    const scans = 'filename\tacq_time\nanat/sub-01_T1w.nii.gz\t2024-03-05T10:11:12\n'
    expect(holdsVisitDates('sub-01/sub-01_scans.tsv', scans)).toBe(true)
    expect(holdsVisitDates('sub-01/ses-1/sub-01_ses-1_scans.tsv', scans)).toBe(true)
    expect(holdsVisitDates('sub-01/sub-01_sessions.tsv', 'session_id\tacq_time\r\nses-1\t2024-03-05\r\n')).toBe(true)
    expect(holdsVisitDates('sub-01/sub-01_scans.tsv', 'filename\tacq_time\nanat/sub-01_T1w.nii.gz\tn/a\n\n')).toBe(false)
    expect(holdsVisitDates('sub-01/sub-01_scans.tsv', 'filename\tnote\nanat/sub-01_T1w.nii.gz\t2024-03-05\n')).toBe(false)
    expect(holdsVisitDates('participants.tsv', 'participant_id\tacq_time\nsub-01\t2024-03-05\n')).toBe(false)
  })
})

describe('shards', () => {
  it('parses K/N and refuses nonsense', () => {
    expect(parseShard('3/8')).toEqual({ index: 3, count: 8 })
    for (const bad of ['0/2', '3/2', '1/0', 'a/b', '1', '1/2/3']) expect(() => parseShard(bad)).toThrow(/--shard/)
  })

  it('puts every key in exactly one of N shards, the same way every time', () => {
    const keys = Array.from({ length: 500 }, (_, i) => `sub-${i}/anat/sub-${i}_T1w.nii.gz`)
    for (const count of [1, 2, 3, 7]) {
      const owners = keys.map((key) => Array.from({ length: count }, (_, k) => k + 1).filter((index) => inShard(key, { index, count })))
      expect(owners.every((o) => o.length === 1)).toBe(true)
      if (count > 1) {
        const sizes = Array.from({ length: count }, (_, k) => owners.filter((o) => o[0] === k + 1).length)
        expect(Math.min(...sizes)).toBeGreaterThan(500 / count / 2)
      }
    }
    expect(shardOf('sub-01/anat/sub-01_T1w.nii.gz', 8)).toBe(shardOf('sub-01/anat/sub-01_T1w.nii.gz', 8))
  })
})

describe('discovery', () => {
  let root: string
  const files: Record<string, string | Buffer> = {
    'dataset_description.json': '{"Name":"t","BIDSVersion":"1.9.0"}',
    'README': 'readme',
    'participants.tsv': 'participant_id\nsub-01\nsub-02\n',
    'sub-01/anat/sub-01_T1w.nii.gz': 'x',
    'sub-01/anat/sub-01_T1w.json': '{}',
    'sub-01/anat/sub-01_FLAIR.nii.gz': 'x',
    'sub-01/anat/sub-01_defacemask.nii.gz': 'x',
    'sub-01/func/sub-01_task-rest_bold.nii.gz': 'x',
    'sub-01/func/sub-01_task-rest_bold.json': '{}',
    'sub-02/ses-a/anat/sub-02_ses-a_T2w.nii': 'x',
    'sub-02/ses-a/anat/sub-02_ses-a_T1w.nii': 'x',
    'sub-02/ses-b/anat/sub-02_ses-b_T1w.nhdr': 'NRRD0004\ntype: uchar\ndata file: sub-02_ses-b_T1w.raw.gz\n',
    'sub-02/ses-b/anat/sub-02_ses-b_T1w.raw.gz': 'voxels',
    'sourcedata/scan/IM0001': Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.alloc(16)]),
    'derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz': 'x',
    '.git/config': 'x',
    'sub-01/anat/.sub-01_T1w.nii.gz.unface-123-abcd.nii.gz': 'stale',
  }
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'unface-discover-'))
    for (const [rel, contents] of Object.entries(files)) {
      await mkdir(dirname(join(root, rel)), { recursive: true })
      await writeFile(join(root, rel), contents)
    }
  })
  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('finds the BIDS anatomical images, their sidecars, the files to copy, and refuses DICOM', async () => {
    const plan = await discoverDataset(root)
    expect(plan.layout).toBe('bids')
    expect(plan.units.flatMap((u) => u.images.map((i) => i.input))).toEqual([
      'sub-01/anat/sub-01_FLAIR.nii.gz',
      'sub-01/anat/sub-01_T1w.nii.gz',
      'sub-02/ses-a/anat/sub-02_ses-a_T1w.nii',
      'sub-02/ses-a/anat/sub-02_ses-a_T2w.nii',
      'sub-02/ses-b/anat/sub-02_ses-b_T1w.nhdr',
    ])
    expect(plan.units.find((u) => u.key === 'sub-01/anat/sub-01_T1w.nii.gz')?.images[0]?.sidecar).toBe('sub-01/anat/sub-01_T1w.json')
    expect(plan.datasetDescription).toBe('dataset_description.json')
    expect(plan.copies).toEqual([
      'README',
      'derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz',
      'participants.tsv',
      'sub-01/anat/sub-01_defacemask.nii.gz',
      'sub-01/func/sub-01_task-rest_bold.json',
      'sub-01/func/sub-01_task-rest_bold.nii.gz',
    ])
    expect(plan.refused.map((r) => r.input)).toEqual(['sourcedata/scan/IM0001'])
    expect(plan.skipped).toMatchObject({ git: 1, detachedData: 1, temporaries: 1 })
  })

  it('takes --include, --exclude, --participant-label and --mask-from', async () => {
    const plan = await discoverDataset(root, {
      include: [globToRegExp('derivatives/**/*_T1w.nii.gz')],
      exclude: [globToRegExp('sourcedata/**')],
      participants: ['02'],
      maskFrom: 'T1w',
    })
    expect(plan.refused).toEqual([])
    expect(plan.skipped.unselectedSubjects).toBe(1)
    expect(plan.units).toEqual([
      { key: 'derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz', images: [{ input: 'derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz' }] },
      {
        key: 'sub-02/ses-a/anat/',
        reference: 'sub-02/ses-a/anat/sub-02_ses-a_T1w.nii',
        images: [{ input: 'sub-02/ses-a/anat/sub-02_ses-a_T1w.nii' }, { input: 'sub-02/ses-a/anat/sub-02_ses-a_T2w.nii' }],
      },
      { key: 'sub-02/ses-b/anat/sub-02_ses-b_T1w.nhdr', images: [{ input: 'sub-02/ses-b/anat/sub-02_ses-b_T1w.nhdr' }] },
    ])
    expect(plan.copies.some((c) => c.startsWith('sub-01/'))).toBe(false)
  })

  it('treats any other folder as plain: every volume, at any depth', async () => {
    const plan = await discoverDataset(root, { layout: 'plain' })
    expect(plan.units.map((u) => u.key)).toContain('sub-01/func/sub-01_task-rest_bold.nii.gz')
    expect(plan.units.map((u) => u.key)).toContain('sub-01/anat/sub-01_defacemask.nii.gz')
    expect(plan.copies).toContain('dataset_description.json')
  })

  it('groups only folders that hold the reference suffix', () => {
    const units = groupUnits([{ input: 'a/x_T2w.nii' }, { input: 'b/y_T1w.nii' }, { input: 'b/y_FLAIR.nii' }], 'T1w')
    expect(units.map((u) => [u.key, u.images.map((i) => i.input)])).toEqual([
      ['a/x_T2w.nii', ['a/x_T2w.nii']],
      ['b/', ['b/y_T1w.nii', 'b/y_FLAIR.nii']],
    ])
    expect(isBidsAnatomicalImage('sub-01/ses-1/anat/sub-01_ses-1_T2starw.nii.gz')).toBe(true)
    expect(isBidsAnatomicalImage('sub-01/ses-1/extra/anat/sub-01_T1w.nii.gz')).toBe(false)
  })
})

describe('manifest', () => {
  it('keeps the complete rows of a manifest whose last line was cut short, latest row per input, sorted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'unface-manifest-'))
    const path = join(dir, 'm.jsonl')
    const row = (input: string, verdict: ManifestRow['verdict']) => ({ input, verdict }) as ManifestRow
    await appendRow(path, row('b', 'PASS'))
    await appendRow(path, row('a', 'FAIL'))
    await appendRow(path, row('a', 'PASS'))
    await appendFile(path, '{"input":"c","verd')
    const { rows, damagedLines } = await readManifest(path)
    expect(damagedLines).toBe(1)
    expect(latestRows(rows).map((r) => [r.input, r.verdict])).toEqual([
      ['a', 'PASS'],
      ['b', 'PASS'],
    ])
    await rm(dir, { recursive: true, force: true })
  })
})

describe('same grid', () => {
  const grid: Geometry = { size: [10, 10, 10], spacing: [1, 1, 1.2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] }
  it('accepts float round-off and refuses real differences', () => {
    expect(gridDifference(grid, { ...grid, origin: [0.001, 0, 0], spacing: [1.00001, 1, 1.2] })).toBeUndefined()
    expect(gridDifference(grid, { ...grid, size: [10, 10, 11] })).toMatch(/size/)
    expect(gridDifference(grid, { ...grid, spacing: [1, 1, 1.3] })).toMatch(/spacing/)
    expect(gridDifference(grid, { ...grid, origin: [0, 0.5, 0] })).toMatch(/origin/)
    expect(gridDifference(grid, { ...grid, direction: [1, 0, 0, 0, 0.9998, 0.02, 0, -0.02, 0.9998] })).toMatch(/orientation/)
  })
})

class Capture {
  text = ''
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk
    return true
  }
}

describe('progress', () => {
  const plan: DatasetPlanEvent = { type: 'plan', layout: 'bids', images: 2, done: 0, todo: 2, copies: 3, copiedVolumes: 0, copiedVolumeExamples: [], refused: 0, jobs: 2, shard: null, notes: [] }
  const row = (input: string, verdict: ManifestRow['verdict']) =>
    ({ input, verdict, released: verdict === 'PASS', mask: { source: 'self' }, timingsMs: { total: 1500 }, reasons: [] }) as unknown as ManifestRow
  const summary: DatasetSummary = {
    type: 'summary',
    counts: { total: 2, passed: 1, noFace: 0, unverified: 0, failed: 1, errors: 0 },
    processed: 2,
    skipped: 0,
    copied: 3,
    scrubbed: 1,
    copyErrors: [],
    manifest: 'm',
    report: 'r',
    wallMs: 3000,
    exitCode: 3,
  }
  const feed = (tty: boolean, json: boolean) => {
    const stdout = new Capture()
    const stderr = new Capture(tty)
    const progress = datasetProgress({ stdout: stdout as unknown as NodeJS.WritableStream, stderr: stderr as unknown as NodeJS.WritableStream }, json)
    progress.event(plan)
    progress.event({ type: 'start', input: 'a.nii' })
    progress.event({ type: 'file', row: row('a.nii', 'PASS') })
    progress.event({ type: 'file', row: row('b.nii', 'FAIL') })
    progress.event(summary)
    progress.done()
    return { stdout: stdout.text, stderr: stderr.text }
  }

  it('draws a bar with rate and ETA on a terminal, and keeps failures on screen', () => {
    const { stdout, stderr } = feed(true, false)
    expect(stdout).toBe('')
    expect(stderr).toMatch(/\[#+\.*\] 1\/2 [\d.]+\/min ETA/)
    expect(stderr).toMatch(/\[2\/2\] b\.nii: FAIL \(not released\) 1\.5s\n/)
    expect(stderr).toMatch(/2 images: 1 passed, 1 failed verification, 0 no face, 0 errors/)
  })

  it('prints one line per image when piped, and only JSON lines with --json', () => {
    const piped = feed(false, false)
    expect(piped.stderr).not.toMatch(/\r|\x1b/)
    expect(piped.stderr.split('\n').filter((l) => l.startsWith('unface: ['))).toEqual(['unface: [1/2] a.nii: PASS 1.5s', 'unface: [2/2] b.nii: FAIL (not released) 1.5s'])
    const json = feed(false, true)
    expect(json.stderr).toBe('')
    expect(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['plan', 'file', 'file', 'summary'])
  })
})

describe('command line', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'unface-dataset-cli-'))
    await mkdir(join(dir, 'in'))
    await mkdir(join(dir, 'shards'))
    await writeFile(join(dir, 'shards', 'unface-manifest.shard-1-of-2.jsonl'), '')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const cli = async (...argv: string[]) => {
    const stdout = new Capture()
    const stderr = new Capture()
    const code = await runCli(argv, { stdout: stdout as unknown as NodeJS.WritableStream, stderr: stderr as unknown as NodeJS.WritableStream })
    return { code, stdout: stdout.text, stderr: stderr.text }
  }

  it('documents dataset and merge-manifests, with exit codes', async () => {
    const help = await cli('dataset', '--help')
    expect(help.code).toBe(0)
    for (const text of ['--mask-from', '--jobs', '--shard', '--participant-label', '--include', 'merge-manifests', 'Exit codes', '3  no errors']) expect(help.stdout).toContain(text)
    expect((await cli('--help')).stdout).toContain('unface dataset IN_DIR OUT_DIR')
  })

  it('answers bad command lines and folders with one line and the documented code', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['dataset', join(dir, 'in')], 2, /^unface: dataset: missing output folder/],
      [['dataset', join(dir, 'in'), join(dir, 'out'), '--shard', '3/2'], 2, /^unface: --shard needs K\/N/],
      [['dataset', join(dir, 'in'), join(dir, 'out'), '--jobs', '0'], 2, /^unface: --jobs needs a positive whole number/],
      [['dataset', join(dir, 'in'), join(dir, 'out'), '--bogus'], 2, /^unface: Unknown option '--bogus'/],
      [['dataset', join(dir, 'nowhere'), join(dir, 'out')], 1, /nowhere: no such directory/],
      [['dataset', join(dir, 'in'), join(dir, 'in', 'out')], 1, /inside the input dataset/],
      [['merge-manifests', join(dir, 'in')], 1, /holds no unface manifest/],
      [['merge-manifests', join(dir, 'shards')], 1, /missing shard\(s\) 2 of 2/],
    ]
    for (const [argv, code, message] of cases) {
      const result = await cli(...argv)
      expect([argv.join(' '), result.code]).toEqual([argv.join(' '), code])
      expect(result.stderr).toMatch(message)
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
    }
  })

  it('refuses to share an output folder with a live run, and takes over the lock of a dead one', async () => {
    await writeFile(join(dir, 'in', 'dataset_description.json'), '{"Name":"empty","BIDSVersion":"1.9.0"}')
    const out = join(dir, 'locked')
    await mkdir(out)
    await writeFile(join(out, '.unface-lock'), JSON.stringify({ pid: process.pid, host: hostname(), started: 'now' }))
    const refused = await cli('dataset', join(dir, 'in'), out)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/another unface run \(pid \d+/)
    await writeFile(join(out, '.unface-lock'), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), started: 'then' }))
    const taken = await cli('dataset', join(dir, 'in'), out)
    expect(taken.code).toBe(0)
    await expect(readFile(join(out, '.unface-lock'))).rejects.toThrow()
  })

  it('parses --participant-label the way BIDS apps do', async () => {
    // An empty BIDS dataset: nothing to deface, so no model is loaded.
    await writeFile(join(dir, 'in', 'dataset_description.json'), '{"Name":"empty","BIDSVersion":"1.9.0"}')
    const result = await cli('dataset', join(dir, 'in'), join(dir, 'out'), '--participant-label', '01', 'sub-02', '--json')
    expect(result.code).toBe(0)
    expect(result.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['plan', 'summary'])
  })
})
