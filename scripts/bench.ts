/**
 * `npm run bench`: times unface on a 256^3 1 mm T1 (a noisy synthetic head phantom, so the
 * benchmark runs anywhere) and on the bundled 2 mm IXI head. Each measurement runs in a fresh
 * Node process, so peak RSS is that of a whole `unface` run. Prints a Markdown table for
 * docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { makeHeadPhantom } from '../test/phantom/head-phantom.js'
import { writeVolume } from '../src/io/write-volume.js'

const root = resolve(import.meta.dirname, '..')
const dist = join(root, 'dist', 'index.js')
const work = mkdtempSync(join(tmpdir(), 'unface-bench-'))
const repeats = 3

interface Run {
  wallMs: number
  maxRssMb: number
  timingsMs: Record<string, number>
}

/** One library call in a fresh process; returns its timings and the process's peak RSS. */
function runFresh(call: 'maskFile' | 'defaceFile', input: string, output: string): Run {
  const script = `
    const lib = await import(${JSON.stringify(dist)});
    const start = performance.now();
    const result = await lib.${call}(${JSON.stringify(input)}, { output: ${JSON.stringify(output)}, force: true });
    const wallMs = performance.now() - start;
    console.log(JSON.stringify({ wallMs, maxRssMb: process.resourceUsage().maxRSS / 1024, timingsMs: result.timingsMs }));`
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Run
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

const phantom = makeHeadPhantom({ contrast: 'T1', orientation: 'RAS', spacing: [1, 1, 1], fieldOfView: [256, 256, 256], noise: 6, seed: 3 })
const t1Path = join(work, 'phantom-t1-256-1mm.nii.gz')
await writeVolume(phantom.volume, t1Path)
const inputs = [
  { name: `T1 phantom ${phantom.volume.size.join('x')} 1 mm`, path: t1Path },
  { name: 'IXI012 T1 120x120x90 2 mm', path: join(root, 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz') },
]

console.log(`unface benchmark, ${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'})`)
console.log(`median of ${repeats} fresh-process runs each\n`)
console.log('| input | command | wall (ms) | stages (ms) | peak RSS (MB) | gunzip + gzip of the file (ms) |')
console.log('|---|---|---|---|---|---|')
try {
  for (const input of inputs) {
    const reference = gzipReference(input.path)
    for (const call of ['defaceFile', 'maskFile'] as const) {
      const runs = Array.from({ length: repeats }, () => runFresh(call, input.path, join(work, `out-${call}.nii.gz`)))
      const stages = Object.keys(runs[0]?.timingsMs ?? {})
        .map((stage) => `${stage} ${median(runs.map((r) => r.timingsMs[stage] ?? 0))}`)
        .join(', ')
      const command = call === 'defaceFile' ? 'unface deface' : 'unface mask'
      console.log(
        `| ${input.name} | ${command} | ${Math.round(median(runs.map((r) => r.wallMs)))} | ${stages} | ${Math.round(median(runs.map((r) => r.maxRssMb)))} | ${Math.round(reference.gunzipMs)} + ${Math.round(reference.gzipMs)} |`,
      )
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
