/**
 * `npm run bench`: times the whole `unface deface` (verification included) on a 256^3 1 mm T1
 * (the bundled 2 mm IXI head resampled up, so the face detector sees a real face) and on the
 * bundled 2 mm IXI head itself, each in fresh `node dist/cli/main.js` processes, so that the
 * wall time and the peak RSS are those of a user's command. The stage breakdown comes from the
 * command's --json output; the bare gunzip and gzip of the same file are given for reference.
 * Prints Markdown for docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import type { Vec3, Volume } from '../src/io/volume.js'
import { readVolume } from '../src/io/read-volume.js'
import { writeVolume } from '../src/io/write-volume.js'
import { toCanonical } from '../src/io/canonical-grid.js'

const root = resolve(import.meta.dirname, '..')
const cli = join(root, 'dist', 'cli', 'run-cli.js')
const sample = join(root, 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz')
const work = mkdtempSync(join(tmpdir(), 'unface-bench-'))
const repeats = 3

interface Run {
  /** From starting node to its exit, as a shell would time the command. */
  processMs: number
  /** Inside the process, from the command line parsed to the result printed. */
  wallMs: number
  maxRssMb: number
  timingsMs: Record<string, number>
  verdict: string
}

/**
 * One `unface deface --json`, run through the CLI's own entry (runCli) in a fresh Node process
 * that then reports its wall time and its peak RSS: the figures of the user's command.
 */
function runCommand(input: string, output: string): Run {
  const script = `
    const { runCli } = await import(${JSON.stringify(cli)});
    let json = '';
    const stdout = { write: (chunk) => { json += chunk; return true } };
    const start = performance.now();
    const code = await runCli(['deface', ${JSON.stringify(input)}, '-o', ${JSON.stringify(output)}, '--force', '--json'], { stdout, stderr: process.stderr });
    const wallMs = performance.now() - start;
    const result = JSON.parse(json);
    console.log(JSON.stringify({ code, wallMs, maxRssMb: process.resourceUsage().maxRSS / 1024, timingsMs: result.timingsMs, verdict: result.verdict }));`
  const start = performance.now()
  const run = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Omit<Run, 'processMs'>
  return { ...run, processMs: performance.now() - start }
}

/**
 * The same deface as a library call in one process that has loaded the models once, as
 * `unface dataset` workers and TypeScript users run it: the first call warms up (JIT, the
 * networks' first runs), the rest are timed. Same options as the command: verification on, no report.
 */
function runWarm(input: string, output: string, calls: number): { wallMs: number[]; timingsMs: Record<string, number>[]; verdicts: string[] } {
  const index = join(root, 'dist', 'index.js')
  const script = `
    const { defaceFile, loadModels } = await import(${JSON.stringify(index)});
    const models = await loadModels();
    const wallMs = [], timingsMs = [], verdicts = [];
    for (let i = 0; i < ${calls + 1}; i++) {
      const start = performance.now();
      const result = await defaceFile(${JSON.stringify(input)}, { output: ${JSON.stringify(output)}, force: true, models });
      if (i === 0) continue;
      wallMs.push(performance.now() - start);
      timingsMs.push(result.timingsMs);
      verdicts.push(result.verdict);
    }
    await models.faceCheck?.close();
    console.log(JSON.stringify({ wallMs, timingsMs, verdicts }));`
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }))
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

function gzipReference(path: string): { gunzipMs: number; gzipMs: number } {
  const bytes = readFileSync(path)
  const a = performance.now()
  const raw = gunzipSync(bytes)
  const b = performance.now()
  gzipSync(raw, { level: 6 })
  const c = performance.now()
  return { gunzipMs: b - a, gzipMs: c - b }
}

/** The head on a 256^3 grid of 1 mm voxels (RAS, centred), trilinear, as a 1 mm scanner would see it. */
function upsampleTo1mm(volume: Volume): Volume {
  const { volume: ras } = toCanonical(volume)
  const n = 256
  const size: Vec3 = [n, n, n]
  const data = new Int16Array(n * n * n)
  const [sx, sy, sz] = ras.size
  const slope = ras.scaling?.slope ?? 1
  const intercept = ras.scaling?.intercept ?? 0
  const at = (x: number, y: number, z: number) => (ras.data[x + sx * (y + sy * z)] as number) * slope + intercept
  const centre = ras.size.map((s, a) => ((s - 1) * (ras.spacing[a] as number)) / 2)
  for (let k = 0; k < n; k++) {
    const cz = ((centre[2] as number) + (k - (n - 1) / 2)) / ras.spacing[2]
    for (let j = 0; j < n; j++) {
      const cy = ((centre[1] as number) + (j - (n - 1) / 2)) / ras.spacing[1]
      for (let i = 0; i < n; i++) {
        const cx = ((centre[0] as number) + (i - (n - 1) / 2)) / ras.spacing[0]
        if (cx < 0 || cy < 0 || cz < 0 || cx > sx - 1 || cy > sy - 1 || cz > sz - 1) continue
        const [x0, y0, z0] = [Math.min(Math.floor(cx), sx - 2), Math.min(Math.floor(cy), sy - 2), Math.min(Math.floor(cz), sz - 2)]
        const [fx, fy, fz] = [cx - x0, cy - y0, cz - z0]
        let v = 0
        for (let c = 0; c < 8; c++) {
          const [dx, dy, dz] = [c & 1, (c >> 1) & 1, (c >> 2) & 1]
          v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * (dz ? fz : 1 - fz) * at(x0 + dx, y0 + dy, z0 + dz)
        }
        data[i + n * (j + n * k)] = Math.round(v)
      }
    }
  }
  const origin = ras.origin.map((o, a) => o + (ras.direction[a * 3 + a] as number) * ((centre[a] as number) - (n - 1) / 2)) as Vec3
  const upsampled: Volume = { ...ras, data, pixelType: 'int16', size, spacing: [1, 1, 1], origin, headerText: [] }
  delete upsampled.scaling
  delete upsampled.source.niftiHeader
  return upsampled
}

const ixi = await readVolume(sample)
const big = join(work, 'IXI012-256-1mm.nii.gz')
await writeVolume(upsampleTo1mm({ ...ixi, source: { ...ixi.source } }), big)
const inputs = [
  { name: 'IXI012 T1 resampled to 256x256x256, 1 mm (int16)', path: big },
  { name: 'IXI012 T1 120x120x90, 2 mm (uint8, bundled sample)', path: sample },
]

console.log(`unface benchmark, ${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), load average before ${loadavg()[0]?.toFixed(2)}`)
console.log(`\`npm run bench\`: median of ${repeats} runs of \`unface deface IN -o OUT --force --json\`, each a fresh process\n`)
console.log('| input | verdict | whole process (ms) | command (ms) | load models | read | segment | deface | render + verify | write | peak RSS (MB) | gunzip + gzip of the input (ms) |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
try {
  for (const input of inputs) {
    const reference = gzipReference(input.path)
    const runs = Array.from({ length: repeats }, () => runCommand(input.path, join(work, 'out.nii.gz')))
    const stage = (name: string) => median(runs.map((r) => r.timingsMs[name] ?? 0))
    console.log(
      `| ${input.name} | ${runs.map((r) => r.verdict).join(', ')} | ${Math.round(median(runs.map((r) => r.processMs)))} | ${Math.round(median(runs.map((r) => r.wallMs)))} | ${stage('load models')} | ${stage('read')} | ${stage('segment')} | ${stage('deface')} | ${stage('verify')} | ${stage('write')} | ${Math.round(median(runs.map((r) => r.maxRssMb)))} | ${Math.round(reference.gunzipMs)} + ${Math.round(reference.gzipMs)} |`,
    )
  }
  console.log('')
  console.log(`In one process with the models loaded (a library call, as each \`unface dataset\` worker makes): median of ${repeats} calls of \`defaceFile(IN, { output, force: true, models })\` after one warm-up call`)
  console.log('')
  console.log('| input | verdict | call (ms) | read | segment | deface | render + verify | write |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const input of inputs) {
    const warm = runWarm(input.path, join(work, 'out.nii.gz'), repeats)
    const stage = (name: string) => Math.round(median(warm.timingsMs.map((t) => t[name] ?? 0)))
    console.log(`| ${input.name} | ${warm.verdicts.join(', ')} | ${Math.round(median(warm.wallMs))} | ${stage('read')} | ${stage('segment')} | ${stage('deface')} | ${stage('verify')} | ${stage('write')} |`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
