/**
 * `npm run bench:dataset`: scans per minute of `unface dataset` at --jobs 1 and --jobs 2, and
 * the peak memory of the whole process tree (parent + workers), on a folder of 256^3 1 mm T1
 * heads: real IXI heads from ../shared/data resampled up from 2 mm (trilinear, padded to 256^3),
 * or, without that folder or with --phantom, the synthetic head phantom of scripts/bench.ts.
 * Writes the table into docs/dataset-benchmark.md.
 *
 * Each --jobs value is measured --repeat times, interleaved (1, 2, 1, 2, ...) so that a change in
 * the machine's load during the benchmark affects both alike; the table shows the fastest run
 * of each (the one least disturbed by other work).
 *
 *   npm run bench:dataset [-- --scans 8 --jobs 1,2 --repeat 2 --phantom --keep --out FILE]
 */
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { makeHeadPhantom } from '../test/phantom/head-phantom.js'
import { hasSharedData, sharedPath } from '../test/shared-data.js'
import { readVolume } from '../src/io/read-volume.js'
import { writeVolume } from '../src/io/write-volume.js'
import { upsampledTo1mm } from './real-volumes.js'

const { values } = parseArgs({
  options: { scans: { type: 'string' }, jobs: { type: 'string' }, repeat: { type: 'string' }, phantom: { type: 'boolean' }, keep: { type: 'boolean' }, out: { type: 'string' } },
})
const repeats = Number(values.repeat ?? 2)
const scans = Number(values.scans ?? 8)
const jobList = (values.jobs ?? '1,2').split(',').map(Number)
const usePhantom = values.phantom === true || !hasSharedData
const root = resolve(import.meta.dirname, '..')
const cli = join(root, 'dist', 'cli', 'main.js')
const docPath = resolve(values.out ?? join(root, 'docs', 'dataset-benchmark.md'))
const SIZE = 256

async function makeDataset(folder: string): Promise<string> {
  await mkdir(folder, { recursive: true })
  const distinct: string[] = []
  if (usePhantom) {
    for (let seed = 1; seed <= Math.min(scans, 2); seed++) {
      const phantom = makeHeadPhantom({ contrast: 'T1', orientation: 'RAS', spacing: [1, 1, 1], fieldOfView: [SIZE, SIZE, SIZE], noise: 6, seed })
      const path = join(folder, `scan-${String(seed).padStart(3, '0')}_T1w.nii.gz`)
      await writeVolume(phantom.volume, path)
      distinct.push(path)
    }
  } else {
    const heads = ['IXI012-HH-1211_T1.nii.gz', 'IXI015-HH-1258_T1.nii.gz', 'IXI132-HH-1415_T1.nii.gz', 'IXI162-HH-1548_T1.nii.gz']
    for (const [i, head] of heads.slice(0, scans).entries()) {
      const path = join(folder, `scan-${String(i + 1).padStart(3, '0')}_T1w.nii.gz`)
      await writeVolume(upsampledTo1mm(await readVolume(sharedPath('heads', head)), SIZE), path)
      distinct.push(path)
    }
  }
  for (let i = distinct.length; i < scans; i++) {
    await copyFile(distinct[i % distinct.length] as string, join(folder, `scan-${String(i + 1).padStart(3, '0')}_T1w.nii.gz`))
  }
  return usePhantom ? 'synthetic head phantom (test/phantom/head-phantom.ts), T1, 1 mm, noise 6' : `IXI T1 heads (${Math.min(scans, 4)} distinct, from ../shared/data/heads) resampled from 2 mm to 1 mm, padded to 256^3`
}

/** RSS of a process and all its descendants, in MB (Linux /proc). */
async function treeRssMb(pid: number): Promise<number> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')
  const own = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(own)?.[1] ?? 0)
  let total = kb / 1024
  for (const child of children.trim().split(/\s+/).filter((c) => c !== '')) total += await treeRssMb(Number(child))
  return total
}

/**
 * CPU seconds used so far by a process and its descendants, live or finished (Linux /proc: utime,
 * stime and the reaped children's cutime, cstime, in clock ticks of 1/100 s).
 */
async function treeCpuS(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  let ticks = [11, 12, 13, 14].reduce((sum, f) => sum + Number(fields[f] ?? 0), 0)
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')
  for (const child of children.trim().split(/\s+/).filter((c) => c !== '')) ticks += (await treeCpuS(Number(child))) * 100
  return ticks / 100
}

/**
 * What the machine itself allows: the same CPU-bound loop in one process, then in two at once.
 * On an idle machine with two free cores the ratio is close to 2; it bounds what --jobs 2 can
 * gain, whatever unface does.
 */
async function cpuCeiling(): Promise<{ oneS: number; twoS: number; speedUp: number }> {
  const loop = 'let x = 0; for (let i = 0; i < 3e8; i++) x = (x + i * 7) % 1000003; if (x < 0) console.log(x)'
  const run = () =>
    new Promise<number>((resolveRun) => {
      const start = performance.now()
      spawn(process.execPath, ['-e', loop], { stdio: 'ignore' }).on('close', () => resolveRun((performance.now() - start) / 1000))
    })
  const oneS = await run()
  const twoS = Math.max(...(await Promise.all([run(), run()])))
  return { oneS, twoS, speedUp: (2 * oneS) / twoS }
}

interface Measurement {
  jobs: number
  wallS: number
  scansPerMin: number
  peakTreeRssMb: number
  /** CPU seconds of the process tree over the wall seconds: how many cores the run kept busy. */
  coresBusy: number
  counts: Record<string, number>
  meanPerScanS: number
  /** Mean ms per stage over the scans (DefaceReport.timingsMs plus the dataset steps). */
  stagesMs: Record<string, number>
}

async function measure(input: string, jobs: number): Promise<Measurement> {
  const out = join(work, `out-j${jobs}`)
  await rm(out, { recursive: true, force: true })
  const start = performance.now()
  const child = spawn(process.execPath, [cli, 'dataset', input, out, '--jobs', String(jobs), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  let peak = 0
  let cpuS = 0
  const sampler = setInterval(() => {
    void treeRssMb(child.pid as number).then((mb) => (peak = Math.max(peak, mb)))
    void treeCpuS(child.pid as number).then((s) => (cpuS = Math.max(cpuS, s)))
  }, 250)
  const code = await new Promise<number | null>((r) => child.on('close', r))
  clearInterval(sampler)
  const wallS = (performance.now() - start) / 1000
  const events = stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { type: string; counts?: Record<string, number>; row?: { timingsMs: Record<string, number> } })
  const summary = events.find((e) => e.type === 'summary')
  if (summary === undefined) throw new Error(`unface dataset --jobs ${jobs} exited with ${code} and no summary`)
  const files = events.filter((e) => e.type === 'file')
  const perScan = files.map((e) => (e.row?.timingsMs.total ?? 0) / 1000)
  const stagesMs: Record<string, number> = {}
  for (const e of files) for (const [stage, ms] of Object.entries(e.row?.timingsMs ?? {})) stagesMs[stage] = (stagesMs[stage] ?? 0) + ms / files.length
  return {
    jobs,
    wallS,
    scansPerMin: (scans / wallS) * 60,
    peakTreeRssMb: peak,
    coresBusy: cpuS / wallS,
    counts: summary.counts ?? {},
    meanPerScanS: perScan.reduce((a, b) => a + b, 0) / Math.max(1, perScan.length),
    stagesMs,
  }
}

const work = await mkdtemp(join(tmpdir(), 'unface-bench-dataset-'))
try {
  if (!existsSync(cli)) throw new Error('build first: npm run build')
  const input = join(work, 'in')
  const made = performance.now()
  const description = await makeDataset(input)
  console.error(`made ${scans} scans in ${((performance.now() - made) / 1000).toFixed(0)} s: ${description}`)
  const loadBefore = loadavg()[0] as number
  const ceilingBefore = await cpuCeiling()
  console.error(`machine: a CPU loop takes ${ceilingBefore.oneS.toFixed(1)} s alone, ${ceilingBefore.twoS.toFixed(1)} s two at once: ${ceilingBefore.speedUp.toFixed(2)}x`)
  const runs = new Map<number, Measurement[]>(jobList.map((j) => [j, []]))
  for (let repeat = 1; repeat <= repeats; repeat++) {
    for (const jobs of jobList) {
      console.error(`unface dataset --jobs ${jobs} (run ${repeat} of ${repeats}) ...`)
      const r = await measure(input, jobs)
      runs.get(jobs)?.push(r)
      console.error(`  ${r.wallS.toFixed(1)} s, ${r.scansPerMin.toFixed(1)} scans/min, peak ${Math.round(r.peakTreeRssMb)} MB, load ${(loadavg()[0] as number).toFixed(2)}`)
    }
  }
  const results = jobList.map((jobs) => {
    const list = [...(runs.get(jobs) ?? [])].sort((a, b) => a.wallS - b.wallS)
    return { ...(list[0] as Measurement), all: list.map((r) => r.wallS.toFixed(1)).join(', ') }
  })
  const loadAfter = loadavg()[0] as number
  const ceilingAfter = await cpuCeiling()
  console.error(`machine: a CPU loop takes ${ceilingAfter.oneS.toFixed(1)} s alone, ${ceilingAfter.twoS.toFixed(1)} s two at once: ${ceilingAfter.speedUp.toFixed(2)}x`)
  const ceiling = (c: { oneS: number; twoS: number; speedUp: number }) => `${c.oneS.toFixed(1)} s alone, ${c.twoS.toFixed(1)} s two at once (${c.speedUp.toFixed(2)}x)`
  const base = results[0] as Measurement
  const rows = results.map(
    (r) =>
      `| ${r.jobs} | ${scans} | ${r.wallS.toFixed(1)} (${r.all}) | ${r.scansPerMin.toFixed(1)} | ${(r.scansPerMin / base.scansPerMin).toFixed(2)}x | ${r.meanPerScanS.toFixed(1)} | ${r.coresBusy.toFixed(2)} | ${Math.round(r.peakTreeRssMb)} | ${Object.entries(r.counts).filter(([k, v]) => k !== 'total' && v > 0).map(([k, v]) => `${k} ${v}`).join(', ')} |`,
  )
  const table = [
    '| --jobs | scans | wall (s): fastest (all runs) | scans/min | speed-up | mean time per scan (s) | cores busy (CPU s / wall s) | peak RSS, parent + workers (MB) | verdicts |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n')
  const machine = `${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`
  const bestCeiling = Math.max(ceilingBefore.speedUp, ceilingAfter.speedUp)
  const doc = `# Dataset benchmark

Measured with \`npm run bench:dataset\` (scripts/bench-dataset.ts) on ${new Date().toISOString().slice(0, 10)}:
\`unface dataset IN OUT --jobs N --json\` on a folder of ${scans} scans of 256^3 at 1 mm
(${description}), from a fresh output folder each time, so every run includes starting the workers
and loading the models. Wall time is the whole command; peak RSS is the sum over the process tree
(parent and workers), sampled every 250 ms from /proc. Each setting was run ${repeats} time(s),
interleaved; the row is the fastest run of each.

Machine: ${machine}.

What the machine allowed at the time: the same CPU-bound JavaScript loop run in one process and
then in two processes at once (the most any program can gain from a second job here) took
${ceiling(ceilingBefore)} before the benchmark and ${ceiling(ceilingAfter)} after it.

${table}

Where the time of one scan goes at --jobs ${base.jobs} (mean ms per scan): ${Object.entries(base.stagesMs)
    .map(([stage, ms]) => `${stage} ${Math.round(ms)}`)
    .join(', ')}. \`hash\`, \`thumbnail\` and \`hash output\` are the dataset layer's own
work; the rest is \`defaceFile\` (src/pipeline.ts), including the per-image report, which the
dataset report's thumbnails are made from. One worker is not one core: its network runs on
cores / jobs threads and its face check on a thread of its own, so --jobs ${base.jobs} already kept
${base.coresBusy.toFixed(2)} of the ${availableParallelism()} cores busy (the "cores busy" column), which bounds what a second job can add.

Targets: at least 1.7x from 1 to 2 jobs, and at least 30 scans/min.
A fixed cost per run (starting the workers and loading the models, about 2 s) is included.

**Note on these figures:** ${
    bestCeiling < 1.7
      ? `a second process gained at most ${bestCeiling.toFixed(2)}x on this machine during the measurement (the CPU loop above), because it was shared with other work, so the --jobs 2 row measures that contention, not unface's scaling, and the 1.7x target could not be reached by any program here. Rerun on an idle machine with at least two free cores.`
      : 'the machine allowed a second process to run at nearly full speed (the CPU loop above), so the speed-up is unface\'s own.'
  }
`
  // The sections people wrote below the generated part (from its first "## " heading on) are kept.
  const previous = existsSync(docPath) ? await readFile(docPath, 'utf8') : ''
  const written = previous.indexOf('\n## ')
  await writeFile(docPath, written === -1 ? doc : `${doc}${previous.slice(written)}`)
  console.log(table)
  console.error(`wrote ${docPath}`)
} finally {
  if (values.keep === true) console.error(`kept ${work}`)
  else await rm(work, { recursive: true, force: true })
}
