/**
 * `unface dataset` end to end on a small BIDS dataset of real 2 mm heads (test/bids-fixture.ts):
 * a run killed with SIGKILL and resumed, a rerun that changes nothing, a run split into shards
 * and merged, and a plain folder of mixed formats. The CLI runs as a child process from the
 * sources (node --import tsx), as a user would run it, so that it can be killed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'
import { FIXTURE_IMAGES, FIXTURE_PLAIN_FILES, buildBidsFixture } from '../../test/bids-fixture.js'
import { readVolume } from '../io/read-volume.js'
import { writeVolume } from '../io/write-volume.js'
import { identifyingKeys, PROVENANCE_FIELD } from './sidecar.js'
import { readManifest, withoutTimings, type ManifestRow } from './manifest.js'
import { sha256OfFile } from './process-unit.js'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')]

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const done = new Promise<Run>((resolveRun) => child.on('close', (code, signal) => resolveRun({ code, signal, stdout, stderr })))
  return { child, done }
}

const cli = (...args: string[]) => startCli(args).done

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

async function listFiles(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true })
  const nested = await Promise.all(
    entries.map((e) => {
      const path = rel === '' ? e.name : `${rel}/${e.name}`
      return e.isDirectory() ? listFiles(root, path) : Promise.resolve([path])
    }),
  )
  return nested.flat().sort()
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let work: string
let dataset: string
let resumed: string
let manifestAfterResume: ManifestRow[]

describeWithSharedData('unface dataset', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'unface-dataset-'))
    dataset = join(work, 'bids')
    resumed = join(work, 'out-resumed')
    await buildBidsFixture(dataset)
  })
  afterAll(async () => {
    await rm(work, { recursive: true, force: true })
  })

  it('survives SIGKILL halfway and resumes without redoing or corrupting anything', async () => {
    const args = ['dataset', dataset, resumed, '--mask-from', 'T1w', '--jobs', '2', '--json']
    const first = startCli(args)
    const manifest = join(resumed, 'unface-manifest.jsonl')
    // Kill as soon as one real image (not the truncated one, which fails at once) is recorded.
    for (let i = 0; i < 1200; i++) {
      const rows = (await readManifest(manifest)).rows
      if (rows.some((r) => r.verdict !== 'ERROR')) break
      if (first.child.exitCode !== null) break
      await sleep(100)
    }
    first.child.kill('SIGKILL')
    const killed = await first.done
    expect(killed.signal).toBe('SIGKILL')
    const recordedBeforeKill = new Set((await readManifest(manifest)).rows.map((r) => r.input))
    expect(recordedBeforeKill.size).toBeGreaterThan(0)
    expect(recordedBeforeKill.size).toBeLessThan(FIXTURE_IMAGES.length)
    await sleep(1500) // the orphaned workers notice the closed channel and exit

    const second = await cli(...args)
    expect(second.stderr).toBe('')
    const events = jsonLines(second.stdout)
    const plan = events.find((e) => e.type === 'plan') as { done: number; todo: number; notes: string[] }
    // The scans table is copied byte for byte, so the run points at the visit date it still holds.
    expect(plan.notes).toEqual([expect.stringMatching(/^1 scans\/sessions table\(s\) .*acq_time \(sub-02\/sub-02_scans\.tsv\)/)])
    expect(plan.done).toBe(recordedBeforeKill.size)
    expect(plan.todo).toBe(FIXTURE_IMAGES.length - recordedBeforeKill.size)
    const files = events.filter((e) => e.type === 'file').map((e) => (e.row as ManifestRow).input)
    expect(files.filter((f) => recordedBeforeKill.has(f))).toEqual([])
    // The truncated image is an error, so the run says 1; the others were all done.
    expect(second.code).toBe(1)

    // Each image was defaced and recorded once, across both runs.
    const log = jsonLines(await readFile(join(resumed, 'derivatives/unface/logs/unface-runs.jsonl'), 'utf8'))
    const doneEvents = log.filter((e) => e.event === 'done').map((e) => e.input as string)
    for (const image of FIXTURE_IMAGES) expect(doneEvents.filter((d) => d === image.path).length).toBeLessThanOrEqual(1)
    const { rows, damagedLines } = await readManifest(manifest)
    expect(damagedLines).toBe(0)
    expect(rows.map((r) => r.input)).toEqual(FIXTURE_IMAGES.map((i) => i.path))
    manifestAfterResume = rows

    // No temporary file is left, and every released output is whole and is what the manifest says.
    const outFiles = await listFiles(resumed)
    expect(outFiles.filter((f) => /(^|\/)\.[^/]*unface-/.test(f))).toEqual([])
    for (const row of rows) {
      const image = FIXTURE_IMAGES.find((i) => i.path === row.input)
      if (image?.readable === false) {
        expect(row.verdict).toBe('ERROR')
        expect(row.error).toMatch(/truncated|corrupt/)
      } else {
        expect(['PASS', 'FAIL', 'NO-FACE']).toContain(row.verdict)
        expect(row.voxels?.brainChanged).toBe(0)
        expect(row.inputSha256).toBe(await sha256OfFile(join(dataset, row.input)))
        expect(row.tool.codeSha256).toMatch(/^[0-9a-f]{64}$/)
        expect(row.models.segmentationSha256).toMatch(/^[0-9a-f]{64}$/)
        expect(row.report?.thumbnail).toBeDefined()
        expect((await stat(join(resumed, row.report?.thumbnail as string))).size).toBeGreaterThan(1000)
      }
      expect(row.released).toBe(row.verdict === 'PASS' || row.verdict === 'NO-FACE')
      if (row.released) {
        expect(row.output).toBe(row.input)
        expect(row.outputSha256).toBe(await sha256OfFile(join(resumed, row.input)))
        const volume = await readVolume(join(resumed, row.input))
        const original = await readVolume(join(dataset, row.input))
        expect(volume.size).toEqual(original.size)
        expect(volume.origin).toEqual(original.origin)
      } else {
        expect(outFiles).not.toContain(row.input)
        expect(row.output).toBeNull()
      }
    }

    // --mask-from: the T2w (a copy of the T1w on its grid) used the T1w's mask if the T1w was released;
    // the FLAIR (another grid) was always segmented on its own.
    const byInput = new Map(rows.map((r) => [r.input, r]))
    const t1 = byInput.get('sub-02/anat/sub-02_T1w.nii.gz') as ManifestRow
    const t2 = byInput.get('sub-02/anat/sub-02_T2w.nii.gz') as ManifestRow
    if (t1.released) expect(t2.mask).toEqual({ source: 'mask-from', from: t1.input })
    else expect(t2.mask.note).toMatch(/not released/)
    const flair = byInput.get('sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz') as ManifestRow
    expect(flair.mask.source).toBe('self')
    expect(flair.mask.note).toMatch(/voxel grid|not released/)
    expect(byInput.get('sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz')?.mask).toEqual({ source: 'self' })
  }, 300_000)

  it('leaves no identifying field in any JSON, records provenance, and copies every other file byte for byte', async () => {
    const outFiles = await listFiles(resumed)
    for (const file of outFiles.filter((f) => f.endsWith('.json') && !f.startsWith('derivatives/'))) {
      expect([file, identifyingKeys(JSON.parse(await readFile(join(resumed, file), 'utf8')))]).toEqual([file, []])
    }
    for (const row of manifestAfterResume.filter((r) => r.released)) {
      const sidecar = JSON.parse(await readFile(join(resumed, row.sidecar?.output as string), 'utf8')) as Record<string, Record<string, unknown>>
      expect(sidecar[PROVENANCE_FIELD]).toMatchObject({ Tool: 'unface', Verdict: row.verdict, Mode: 'remove' })
      if (!row.input.endsWith('_T2w.nii.gz')) expect(sidecar.RepetitionTime).toBe(2.3)
    }
    // No sidecar is released for an image that was not.
    for (const row of manifestAfterResume.filter((r) => !r.released)) expect(outFiles).not.toContain(row.input.replace(/\.nii\.gz$/, '.json'))
    for (const file of FIXTURE_PLAIN_FILES) {
      expect([file, Buffer.compare(await readFile(join(dataset, file)), await readFile(join(resumed, file)))]).toEqual([file, 0])
    }
    const description = JSON.parse(await readFile(join(resumed, 'dataset_description.json'), 'utf8')) as { Name: string; GeneratedBy: Array<{ Name: string }> }
    expect(description.Name).toBe('unface test dataset')
    expect(description.GeneratedBy.map((g) => g.Name)).toEqual(['unface'])

    const report = await readFile(join(resumed, 'unface-report.html'), 'utf8')
    const verdicts = [...report.matchAll(/class="card" data-verdict="([A-Z-]+)"/g)].map((m) => m[1])
    expect(verdicts).toHaveLength(FIXTURE_IMAGES.length)
    expect(verdicts[0]).toBe('ERROR')
    expect(report).toContain('data:image/jpeg;base64,')
  }, 300_000)

  it('changes nothing when run again', async () => {
    const manifest = await readFile(join(resumed, 'unface-manifest.jsonl'))
    const before = await Promise.all(manifestAfterResume.filter((r) => r.released).map((r) => stat(join(resumed, r.input))))
    const again = await cli('dataset', dataset, resumed, '--mask-from', 'T1w', '--jobs', '2', '--json')
    const summary = jsonLines(again.stdout).find((e) => e.type === 'summary') as { processed: number; skipped: number; exitCode: number }
    expect(summary).toMatchObject({ processed: 0, skipped: FIXTURE_IMAGES.length, exitCode: 1 })
    expect(Buffer.compare(await readFile(join(resumed, 'unface-manifest.jsonl')), manifest)).toBe(0)
    const after = await Promise.all(manifestAfterResume.filter((r) => r.released).map((r) => stat(join(resumed, r.input))))
    expect(after.map((s) => s.mtimeMs)).toEqual(before.map((s) => s.mtimeMs))
  }, 300_000)

  it('splits into shards that cover every image once, and merges into the unsharded manifest', async () => {
    const sharded = join(work, 'out-sharded')
    const shards = await Promise.all(
      ['1/2', '2/2'].map((shard) => cli('dataset', dataset, sharded, '--mask-from', 'T1w', '--jobs', '1', '--shard', shard, '--json')),
    )
    for (const run of shards) expect(run.code === 0 || run.code === 1 || run.code === 3).toBe(true)
    const perShard = await Promise.all(['1-of-2', '2-of-2'].map(async (s) => (await readManifest(join(sharded, `unface-manifest.shard-${s}.jsonl`))).rows.map((r) => r.input)))
    const all = perShard.flat().sort()
    expect(all).toEqual(FIXTURE_IMAGES.map((i) => i.path))
    // A --mask-from folder stays in one shard.
    const t1Shard = perShard.findIndex((rows) => rows.includes('sub-02/anat/sub-02_T1w.nii.gz'))
    expect(perShard[t1Shard]).toContain('sub-02/anat/sub-02_T2w.nii.gz')

    const merged = await cli('merge-manifests', sharded, '--json')
    expect(merged.stderr).toBe('')
    expect(merged.code).toBe(1)
    const mergedRows = (await readManifest(join(sharded, 'unface-manifest.jsonl'))).rows
    // Rows are compared without their timings. The code hash is compared too, unless the sources
    // were edited between the runs (then it differs, rightly, and says nothing about sharding).
    const sameCode = new Set([...mergedRows, ...manifestAfterResume].map((r) => r.tool.codeSha256)).size === 1
    const comparable = (r: ManifestRow) => ({ ...withoutTimings(r), tool: { ...r.tool, codeSha256: sameCode ? r.tool.codeSha256 : 'edited' } })
    expect(mergedRows.map(comparable)).toEqual(manifestAfterResume.map(comparable))
    // The two trees hold the same files with the same bytes (manifests, reports and logs aside).
    const trees = await Promise.all([listFiles(resumed), listFiles(sharded)])
    const data = (files: string[]) => files.filter((f) => !f.startsWith('unface-') && !f.startsWith('derivatives/'))
    expect(data(trees[1])).toEqual(data(trees[0]))
    const contents = async (root: string, file: string) => {
      if (sameCode || !file.endsWith('.json')) return sha256OfFile(join(root, file))
      const parsed = JSON.parse(await readFile(join(root, file), 'utf8')) as Record<string, Record<string, unknown> | undefined>
      delete parsed[PROVENANCE_FIELD]?.CodeSha256
      return parsed
    }
    for (const file of data(trees[0])) expect([file, await contents(sharded, file)]).toEqual([file, await contents(resumed, file)])
    await expect(readFile(join(sharded, 'unface-report.html'), 'utf8')).resolves.toContain('data-verdict="ERROR"')
  }, 300_000)

  it('defaces a plain folder of mixed formats into a mirrored tree, and outlives a worker that dies', async () => {
    const folder = join(work, 'plain')
    const out = join(work, 'out-plain')
    await mkdir(join(folder, 'site-a', 'deep'), { recursive: true })
    await mkdir(join(folder, 'crash'), { recursive: true })
    await copyFile(sharedPath('heads', 'IXI174-HH-1571_T1.nii.gz'), join(folder, 'site-a', 'deep', 'head one.nii.gz'))
    await copyFile(sharedPath('heads', 'IXI174-HH-1571_T1.nii.gz'), join(folder, 'crash', 'dies.nii.gz'))
    await writeVolume(await readVolume(sharedPath('heads', 'IXI206-HH-1650_T1.nii.gz')), join(folder, 'site-a', 'head2.mha'))
    await writeFile(join(folder, 'notes.txt'), 'kept as it is\n')
    // The worker that takes crash/dies.nii.gz kills itself with SIGKILL, as the OOM killer would.
    const run = await startCli(['dataset', folder, out, '--jobs', '2'], { UNFACE_TEST_WORKER_DIES_ON: 'crash/dies.nii.gz' }).done
    expect(run.stderr).toMatch(/folder: 3 images/)
    expect(run.stderr).toMatch(/\[3\/3\]/)
    const rows = (await readManifest(join(out, 'unface-manifest.jsonl'))).rows
    expect(rows.map((r) => r.input)).toEqual(['crash/dies.nii.gz', 'site-a/deep/head one.nii.gz', 'site-a/head2.mha'])
    const [died, ...others] = rows as [ManifestRow, ...ManifestRow[]]
    expect(died).toMatchObject({ verdict: 'ERROR', released: false, output: null })
    expect(died.error).toMatch(/worker process killed by SIGKILL/)
    for (const row of others) {
      expect(['PASS', 'FAIL', 'NO-FACE']).toContain(row.verdict)
      if (row.released) expect((await readVolume(join(out, row.input))).size).toEqual((await readVolume(join(folder, row.input))).size)
    }
    expect(await readFile(join(out, 'notes.txt'), 'utf8')).toBe('kept as it is\n')
    expect(run.code).toBe(1)
  }, 300_000)
})
