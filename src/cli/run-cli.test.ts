import { createHash } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './run-cli.js'
import { writeVolume } from '../io/write-volume.js'
import { indexedVolume } from '../../test/synthetic-volume.js'

const SAMPLE = resolve(import.meta.dirname, '../../sample-volumes/IXI012-HH-1211_T1.nii.gz')

class Capture {
  text = ''
  isTTY = false
  write(chunk: string): boolean {
    this.text += chunk
    return true
  }
}

async function cli(...argv: string[]) {
  const stdout = new Capture()
  const stderr = new Capture()
  const code = await runCli(argv, { stdout: stdout as unknown as NodeJS.WritableStream, stderr: stderr as unknown as NodeJS.WritableStream })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

let dir: string
let outDir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'unface-cli-'))
  outDir = join(dir, 'out')
  await mkdir(outDir)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** A NIfTI-1 header for `dims` with room for `voxels` bytes of uint8 data. */
function rawNifti(dims: number[], voxels: number): Buffer {
  const bytes = Buffer.alloc(352 + voxels)
  bytes.writeInt32LE(348, 0)
  bytes.writeInt16LE(dims.length, 40)
  dims.forEach((d, i) => bytes.writeInt16LE(d, 42 + 2 * i))
  for (let i = dims.length; i < 7; i++) bytes.writeInt16LE(1, 42 + 2 * i)
  bytes.writeInt16LE(2, 70)
  bytes.writeInt16LE(8, 72)
  for (let i = 1; i < 8; i++) bytes.writeFloatLE(1, 76 + 4 * i)
  bytes.writeFloatLE(352, 108)
  bytes.write('n+1\0', 344, 'latin1')
  return bytes
}

/**
 * Every bad input must give one line naming the file and the problem, a non-zero exit code,
 * no output file (nor a temporary one), and an unchanged input.
 */
async function expectRefused(input: string, pattern: RegExp, extra: string[] = [], exitCode = 1) {
  const before = await readFile(input).then((b) => createHash('sha256').update(b).digest('hex')).catch(() => undefined)
  const output = join(outDir, 'result.nii.gz')
  const result = await cli('deface', input, '-o', output, ...extra)
  expect(result.code).toBe(exitCode)
  expect(result.stderr).toMatch(pattern)
  expect(result.stderr.trim().split('\n')).toHaveLength(1)
  expect(result.stderr).not.toMatch(/\bat .*\(.*:\d+:\d+\)/)
  expect(await readdir(outDir)).toEqual([])
  const after = await readFile(input).then((b) => createHash('sha256').update(b).digest('hex')).catch(() => undefined)
  expect(after).toBe(before)
  return result
}

describe('unface CLI basics', () => {
  it('--help documents the commands and exit codes', async () => {
    const { code, stdout } = await cli('--help')
    expect(code).toBe(0)
    expect(stdout).toMatch(/unface info IN/)
    expect(stdout).toMatch(/Exit codes:[\s\S]*3\s+verification failed/)
  })

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }
    expect((await cli('--version')).stdout.trim()).toBe(`unface ${pkg.version}`)
  })

  it('usage errors exit 2', async () => {
    expect((await cli()).code).toBe(2)
    expect((await cli('frobnicate', 'x')).code).toBe(2)
    expect((await cli('info')).code).toBe(2)
    const bad = await cli('deface', SAMPLE, '--no-such-flag')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/no-such-flag/)
  })

  it('info reports the bundled sample, also as JSON', async () => {
    const text = await cli('info', SAMPLE)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/size\s+120 x 120 x 90/)
    expect(text.stdout).toMatch(/orientation\s+PSR \(not oblique\)/)
    expect(text.stdout).toMatch(/extension\[0\] \(AFNI/)
    const json = JSON.parse((await cli('info', SAMPLE, '--json')).stdout)
    expect(json).toMatchObject({ format: 'nifti', size: [120, 120, 90], spacing: [2, 2, 2], orientation: 'PSR', oblique: false, pixelType: 'uint8', modality: 'MR' })
  })

  it('deface writes the same geometry and scrubs header text unless told to keep it', async () => {
    const output = join(dir, 'scrubbed.nii.gz')
    expect((await cli('deface', SAMPLE, '-o', output)).code).toBe(0)
    const scrubbed = JSON.parse((await cli('info', output, '--json')).stdout)
    const original = JSON.parse((await cli('info', SAMPLE, '--json')).stdout)
    expect(scrubbed.headerText).toEqual([])
    expect({ ...scrubbed, path: '', headerText: [] }).toEqual({ ...original, path: '', headerText: [] })
    const kept = join(dir, 'kept.nii.gz')
    expect((await cli('deface', SAMPLE, '-o', kept, '--keep-header-text')).code).toBe(0)
    expect(JSON.parse((await cli('info', kept, '--json')).stdout).headerText).toEqual(original.headerText)
  })

  it('deface prints its verdict on stdout, or the whole report with --json', async () => {
    const output = join(dir, 'verdict.nii.gz')
    const text = await cli('deface', SAMPLE, '-o', output)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/: PASS: wrote .*verdict\.nii\.gz \(\d+ voxels changed, 0 of them brain\)\n$/)
    const json = await cli('deface', SAMPLE, '-o', output, '--force', '--json', '--mode', 'blur', '--report', join(dir, 'json-report'))
    const report = JSON.parse(json.stdout)
    expect(report).toMatchObject({ verdict: 'PASS', released: true, output, settings: { mode: 'blur', brainMarginMm: 5, ears: false, verify: true } })
    expect(report.reportFiles.png).toMatch(/_unface\.png$/)
    expect(report.labels).toBeUndefined()
    expect(report.montage).toBeUndefined()
    expect(json.stdout.length).toBeLessThan(100_000)
    expect(report.views).toHaveLength(15)
    expect(report.faint.views).toHaveLength(5)
    expect(report.faint.threshold).toBeGreaterThan(0)
    expect((await cli('deface', SAMPLE, '-o', output, '--force', '--mode', 'smudge')).code).toBe(2)
    expect((await cli('deface', SAMPLE, '-o', output, '--force', '--brain-margin', '-1')).code).toBe(2)
  })

  it('the built binary runs and exits with the documented code', async () => {
    const bin = resolve(import.meta.dirname, '../../dist/cli/main.js')
    const run = promisify(execFile)
    const ok = await run(process.execPath, [bin, 'info', SAMPLE, '--json'])
    expect(JSON.parse(ok.stdout).size).toEqual([120, 120, 90])
    const missing = await run(process.execPath, [bin, 'info', join(dir, 'absent.nii')]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    )
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(`unface: ${join(dir, 'absent.nii')}: no such file or directory\n`)
  })

  it('the built binary defaces under node options given by the user, V8 ones included', async () => {
    // The face check's thread must not be handed options a thread may not take (it stopped with an internal error).
    const bin = resolve(import.meta.dirname, '../../dist/cli/main.js')
    const output = join(dir, 'node-options.nii.gz')
    const { stdout } = await promisify(execFile)(process.execPath, ['--max-old-space-size=4096', bin, 'deface', SAMPLE, '-o', output])
    expect(stdout).toMatch(/: PASS: wrote /)
  })
})

describe('bad input: clear one-line errors, non-zero exit, no partial output, input untouched', () => {
  it('a missing file', async () => {
    await expectRefused(join(dir, 'nope.nii.gz'), /nope\.nii\.gz: no such file or directory/)
  })

  it('a directory without DICOM', async () => {
    const empty = join(dir, 'empty-dir')
    await mkdir(empty)
    await writeFile(join(empty, 'notes.txt'), 'not an image')
    await expectRefused(empty, /empty-dir.*no DICOM/i)
  })

  it('a truncated .nii.gz', async () => {
    const bytes = await readFile(SAMPLE)
    const truncated = join(dir, 'truncated.nii.gz')
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)))
    await expectRefused(truncated, /truncated\.nii\.gz: truncated/)
  })

  it('a .nii whose voxel data ends early', async () => {
    const raw = gunzipSync(await readFile(SAMPLE))
    const short = join(dir, 'short.nii')
    await writeFile(short, raw.subarray(0, raw.length - 1000))
    await expectRefused(short, /short\.nii: truncated NIfTI: expected \d+ bytes, found \d+/)
  })

  it('a file that is not an image', async () => {
    const text = join(dir, 'readme.txt')
    await writeFile(text, 'hello')
    await expectRefused(text, /readme\.txt: is not a supported volume/)
    const fake = join(dir, 'fake.nii.gz')
    await writeFile(fake, gzipSync(Buffer.from('this is not a NIfTI header '.repeat(20))))
    await expectRefused(fake, /fake\.nii\.gz: not a NIfTI file/)
    const fakeNrrd = join(dir, 'fake.nrrd')
    await writeFile(fakeNrrd, 'NRRD0004\ngarbage\n')
    await expectRefused(fakeNrrd, /fake\.nrrd: cannot be read as NRRD/)
  })

  it('a 2D image', async () => {
    const flat = join(dir, 'flat.nii')
    await writeFile(flat, rawNifti([64, 64], 64 * 64))
    await expectRefused(flat, /flat\.nii: is a 2D image \(64x64\)/)
    const flatNrrd = join(dir, 'flat.nrrd')
    await writeVolume(indexedVolume({ size: [16, 16, 1] }), flatNrrd)
    await expectRefused(flatNrrd, /flat\.nrrd: is a 2D image/)
  })

  it('a 4D series is refused with a clear message', async () => {
    const series = join(dir, 'fmri.nii')
    await writeFile(series, rawNifti([8, 8, 8, 5], 8 * 8 * 8 * 5))
    await expectRefused(series, /fmri\.nii: is a 4D series \(8x8x8 with 5 frames\).*split the frames/)
  })

  it('a volume over the size limit, before allocating it, and the limit can be raised', async () => {
    const huge = join(dir, 'huge.nii')
    await writeFile(huge, rawNifti([2000, 2000, 2000], 16))
    await expectRefused(huge, /huge\.nii: volume has 8000000000 voxels, over the limit .*--max-voxels/)
    await expectRefused(SAMPLE, /over the limit of 1000 .*--max-voxels/, ['--max-voxels', '1000'])
    const raised = join(dir, 'raised.nii.gz')
    expect((await cli('deface', SAMPLE, '-o', raised, '--max-voxels', String(120 * 120 * 90))).code).toBe(0)
  })

  it('an unwritable output', async () => {
    const result = await cli('deface', SAMPLE, '-o', join(dir, 'no-such-dir', 'x.nii.gz'))
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/x\.nii\.gz: cannot write output: directory .*no-such-dir does not exist/)
    const underFile = await cli('deface', SAMPLE, '-o', join(SAMPLE, 'x.nii.gz'))
    expect(underFile.code).toBe(1)
    expect(underFile.stderr).toMatch(/cannot write output: .* is not a directory/)
    const readOnly = await cli('deface', SAMPLE, '-o', '/proc/unface-test.nii.gz')
    expect(readOnly.code).toBe(1)
    expect(readOnly.stderr).toMatch(/unface-test\.nii\.gz: cannot write output: directory \/proc is not writable/)
    const badExtension = await cli('deface', SAMPLE, '-o', join(outDir, 'x.png'))
    expect(badExtension.code).toBe(1)
    expect(badExtension.stderr).toMatch(/x\.png: unsupported output format/)
    const intoDirectory = await cli('deface', SAMPLE, '-o', outDir)
    expect(intoDirectory.code).toBe(1)
    expect(intoDirectory.stderr).toMatch(/: output is a directory \(give a file name/)
    expect(await readdir(outDir)).toEqual([])
  })

  it('an existing output without --force is kept; with --force it is replaced', async () => {
    const existing = join(dir, 'existing.nii.gz')
    await writeFile(existing, 'precious')
    const refused = await cli('deface', SAMPLE, '-o', existing)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/existing\.nii\.gz: output already exists \(use --force/)
    expect(await readFile(existing, 'utf8')).toBe('precious')
    expect((await cli('deface', SAMPLE, '-o', existing, '--force')).code).toBe(0)
    expect((await readFile(existing)).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]))
  })

  it('output equal to input without --in-place', async () => {
    const copy = join(dir, 'inplace.nii.gz')
    await copyFile(SAMPLE, copy)
    const hash = await sha256(copy)
    const refused = await cli('deface', copy, '-o', copy)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/inplace\.nii\.gz: output is the input itself \(use --in-place/)
    expect(await sha256(copy)).toBe(hash)
    expect((await cli('deface', copy, '-o', copy, '--in-place')).code).toBe(0)
    expect((await readdir(dir)).filter((n) => n.includes('.unface-'))).toEqual([])
  })

  it('--debug adds the stack trace', async () => {
    const result = await cli('info', join(dir, 'nope.nii'), '--debug')
    expect(result.code).toBe(1)
    expect(result.stderr.split('\n').length).toBeGreaterThan(2)
  })
})
