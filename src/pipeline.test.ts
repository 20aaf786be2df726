/**
 * The whole deface on the bundled real sample: what is released, what is withheld, and what the
 * report says. The networks load once for the file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaceFile, loadModels, quarantinePath, type Models } from './pipeline.js'
import { readVolume } from './io/read-volume.js'
import { writeVolume } from './io/write-volume.js'
import { withVoxels, type Volume } from './io/volume.js'
import { LABELS } from './segment/segment-head.js'
import { describeWithSharedData, sharedPath } from '../test/shared-data.js'
import { renderSkinViews, skinThreshold } from './verify/render-surface.js'
import { loadFaceCheck } from './verify/verify-face-removed.js'
import { detectFaces } from './verify/face-detector.js'

const SAMPLE = resolve(import.meta.dirname, '../sample-volumes/IXI012-HH-1211_T1.nii.gz')

let models: Models
let dir: string
beforeAll(async () => {
  models = await loadModels()
  dir = await mkdtemp(join(tmpdir(), 'unface-pipeline-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('defaceFile on the bundled real head', () => {
  it('removes the face, passes verification, writes the output and a report that holds the verdict', async () => {
    const output = join(dir, 'sample_defaced.nii.gz')
    const reportDir = join(dir, 'report')
    const result = await defaceFile(SAMPLE, { output, models, reportDir })
    expect(result.verdict).toBe('PASS')
    expect(result.released).toBe(true)
    expect(result.output).toBe(output)
    expect(result.voxels.changed).toBeGreaterThan(10_000)
    expect(result.voxels.brainChanged).toBe(0)
    // The report counts the labels the volume was defaced with.
    const count = (label: number) => result.labels.reduce((n, l) => (l === label ? n + 1 : n), 0)
    expect([result.voxels.face, result.voxels.ears, result.voxels.brain]).toEqual([count(LABELS.face), count(LABELS.ears), count(LABELS.brain)])
    expect(result.views).toHaveLength(15)
    expect(result.views.some((v) => (v.originalScore ?? 0) >= 0.6)).toBe(true)
    expect(result.views.every((v) => !v.identified)).toBe(true)

    const [original, defaced] = await Promise.all([readVolume(SAMPLE), readVolume(output)])
    expect(defaced.size).toEqual(original.size)
    expect(defaced.direction).toEqual(original.direction)
    let brainTouched = 0
    for (let i = 0; i < original.data.length; i++) {
      if (result.labels[i] === LABELS.brain && defaced.data[i] !== original.data[i]) brainTouched++
    }
    expect(brainTouched).toBe(0)

    const files = await readdir(reportDir)
    expect(files.sort()).toEqual(['IXI012-HH-1211_T1_unface.html', 'IXI012-HH-1211_T1_unface.json', 'IXI012-HH-1211_T1_unface.png'])
    const json = JSON.parse(await readFile(join(reportDir, 'IXI012-HH-1211_T1_unface.json'), 'utf8')) as { verdict: string; voxels: { brainChanged: number } }
    expect(json.verdict).toBe('PASS')
    expect(json.voxels.brainChanged).toBe(0)
    const html = await readFile(join(reportDir, 'IXI012-HH-1211_T1_unface.html'), 'utf8')
    expect(html).toContain('>PASS<')
    expect(html).toContain('data:image/png;base64,')
    const png = await readFile(join(reportDir, 'IXI012-HH-1211_T1_unface.png'))
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG')
  })

  it('fails closed: when the face is left in place, verification fails and nothing is written', async () => {
    const output = join(dir, 'left_in_place.nii.gz')
    const volume = await readVolume(SAMPLE)
    // A mask that marks no face: the defacer changes nothing, as a model that missed the face would.
    const result = await defaceFile(SAMPLE, { output, models, labels: new Uint8Array(volume.data.length) })
    expect(result.verdict).toBe('FAIL')
    expect(result.released).toBe(false)
    expect(result.output).toBeUndefined()
    expect(result.reasons.join(' ')).toMatch(/face/)
    expect((await readdir(dir)).filter((f) => f.includes('left_in_place'))).toEqual([])
  })

  it('--keep-failed puts a failed volume under a quarantine name, never under the name asked for', async () => {
    const output = join(dir, 'kept.nii.gz')
    const volume = await readVolume(SAMPLE)
    const result = await defaceFile(SAMPLE, { output, models, labels: new Uint8Array(volume.data.length), keepFailed: true })
    expect(result.released).toBe(false)
    expect(result.quarantine).toBe(quarantinePath(output))
    const files = (await readdir(dir)).filter((f) => f.startsWith('kept'))
    expect(files).toEqual(['kept.FAILED-VERIFICATION.nii.gz'])
  })

  it('fails closed when the face check itself fails: an error, and nothing is written', async () => {
    const broken = await loadModels()
    await broken.faceCheck?.close()
    const output = join(dir, 'unchecked.nii.gz')
    await expect(defaceFile(SAMPLE, { output, models: broken })).rejects.toThrow(/face check/)
    expect((await readdir(dir)).filter((f) => f.includes('unchecked'))).toEqual([])
    await expect(defaceFile(SAMPLE, { output, models: { segmentation: models.segmentation } })).rejects.toThrow(/without the face check/)
    // Its network session's threads would otherwise go only when the garbage collector finalises
    // it, at any moment of a later test (the thread-count test below saw 19, then 15).
    await broken.segmentation.session.release()
  })

  it.runIf(existsSync('/proc/self/task'))('a call that loads its own models leaves no thread behind', async () => {
    // Each such call starts a face-check thread and a network session; they used to outlive it.
    // A thread that has been told to stop can take a moment to go: count once the number has held
    // still for a second. On a slow machine threads were still going after half a second of
    // stillness (19 counted after the first call, 15 after the second), so a count that has
    // fallen since is no leak; one that has risen is.
    const threads = async () => {
      let count = readdirSync('/proc/self/task').length
      let steady = 0
      for (let waited = 0; waited < 10_000 && steady < 10; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        const now = readdirSync('/proc/self/task').length
        steady = now === count ? steady + 1 : 0
        count = now
      }
      return count
    }
    const output = join(dir, 'one-off.nii.gz')
    await defaceFile(SAMPLE, { output, force: true })
    const after = await threads()
    const again = await defaceFile(SAMPLE, { output, force: true })
    expect(again.verdict).toBe('PASS')
    expect(await threads()).toBeLessThanOrEqual(after)
  })

  /** The bundled head as float32 real intensities made by `edit`, written as a plain NIfTI; with its defaced copy read back. */
  async function defaceFloatCopy(name: string, edit: (real: number) => number) {
    const sample = await readVolume(SAMPLE)
    const slope = sample.scaling?.slope ?? 1
    const real = Float32Array.from(sample.data, (v) => edit((v as number) * slope))
    const copy: Volume = { ...withVoxels(sample, real), headerText: [], source: { ...sample.source } }
    delete copy.scaling
    delete copy.source.niftiHeader
    const input = join(dir, `${name}.nii.gz`)
    await writeVolume(copy, input)
    const output = join(dir, `${name}_defaced.nii.gz`)
    const result = await defaceFile(input, { output, models })
    return { real, result, defaced: await readVolume(output) }
  }

  it('a float scan whose air is NaN is defaced like the same scan with air 0, not released with its face', async () => {
    // NaN once reached the network and the renderer as it was: neither found the face, and the scan went out as NO-FACE.
    const { real, result, defaced } = await defaceFloatCopy('nan-air', (v) => (v === 0 ? NaN : v))
    expect(result.verdict).toBe('PASS')
    expect(result.voxels.face).toBeGreaterThan(50_000)
    let replaced = 0
    for (let i = 0; i < real.length; i++) {
      if (Object.is(defaced.data[i], real[i])) continue
      replaced++
      expect(Number.isFinite(defaced.data[i] as number)).toBe(true)
    }
    expect(replaced).toBe(result.voxels.changed)
  })

  it('a float scan stored with an offset (air at -1000) is defaced to its own air and passes', async () => {
    // It once went unrecognised by the network (0 beyond the field of view was its brightest value) and was withheld.
    const { real, result, defaced } = await defaceFloatCopy('offset', (v) => v - 1000)
    expect(result.verdict).toBe('PASS')
    expect(result.voxels.face).toBeGreaterThan(50_000)
    // Blending towards this scan's air can only darken a voxel; towards 0 it would brighten it.
    let brightened = 0
    for (let i = 0; i < real.length; i++) if ((defaced.data[i] as number) > (real[i] as number)) brightened++
    expect(brightened).toBe(0)
    expect(result.voxels.changed).toBeGreaterThan(50_000)
  })

  it('--no-verify releases the output and the report says it was not verified', async () => {
    const output = join(dir, 'unverified.nii.gz')
    const result = await defaceFile(SAMPLE, { output, models, verify: false })
    expect(result.verdict).toBe('UNVERIFIED')
    expect(result.released).toBe(true)
    expect(result.settings.verify).toBe(false)
    expect(result.reasons.join(' ')).toMatch(/--no-verify/)
  })
})

describe.runIf(existsSync('/proc/thread-self'))('the face check thread on Linux', () => {
  it('runs five nice steps below the process, so that segmentation gets the cores first', async () => {
    await models.faceCheck?.ready
    const niceOf = (task: string) => Number(readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]?.split(' ')[16])
    const own = niceOf(String(process.pid))
    const nices = readdirSync('/proc/self/task').map(niceOf)
    expect(nices).toContain(Math.min(19, own + 5))
  })
})

describeWithSharedData('defaceFile on the skull-stripped control', () => {
  it('finds no face, says NO-FACE, and writes the input unchanged', async () => {
    const input = sharedPath('controls', 'MR_Gd_skullstripped.nii.gz')
    const output = join(dir, 'control.nii.gz')
    const result = await defaceFile(input, { output, models })
    expect(result.verdict).toBe('NO-FACE')
    expect(result.released).toBe(true)
    expect(result.faceFound).toBe(false)
    expect(result.voxels.changed).toBe(0)
    const [original, written] = await Promise.all([readVolume(input), readVolume(output)])
    expect(Buffer.from(written.data.buffer, written.data.byteOffset, written.data.byteLength).equals(Buffer.from(original.data.buffer, original.data.byteOffset, original.data.byteLength))).toBe(true)
  })
})

describeWithSharedData('defacing the heads that need the face region deeper than the network puts it', () => {
  // With only the network's face removed, the orbits and the nasal cavity left behind showed a face
  // to the detector from one view on each of these (yaw -30 pitch +20, and yaw 0 pitch -20).
  for (const head of ['IXI206-HH-1650_T1', 'Subj1_T1']) {
    it(`${head}: PASS, released, no brain voxel changed`, async () => {
      const output = join(dir, `${head}_defaced.nii.gz`)
      const result = await defaceFile(sharedPath('heads', `${head}.nii.gz`), { output, models })
      expect(result.verdict).toBe('PASS')
      expect(result.released).toBe(true)
      expect(result.views.every((v) => !v.defacedFace && !v.identified)).toBe(true)
      expect(result.voxels.brainChanged).toBe(0)
    }, 60_000)
  }
})

describeWithSharedData('a defaced head rendered at a lower threshold than the check uses', () => {
  // The skin's dim outer layer, just outside what the network calls face, once stayed in the
  // output: rendered at 0.6 of the skin threshold, Subj1_T1's eyelids and nose came back and the
  // detector found a face (0.65). The air within 10 mm of the face is removed with it now.
  it('Subj1_T1 shows no face at 0.6 or 0.4 of its skin threshold either', async () => {
    const input = sharedPath('heads', 'Subj1_T1.nii.gz')
    const output = join(dir, 'Subj1_T1_lower-threshold.nii.gz')
    const result = await defaceFile(input, { output, models })
    expect(result.verdict).toBe('PASS')
    const check = await loadFaceCheck()
    const threshold = skinThreshold(await readVolume(input))
    const defaced = await readVolume(output)
    for (const fraction of [0.6, 0.4]) {
      const scores = await Promise.all(renderSkinViews(defaced, { threshold: fraction * threshold }).map(async (view) => Math.max(0, ...(await detectFaces(check.model, view)).map((d) => d.score))))
      expect(Math.max(...scores)).toBeLessThan(check.gallery.calibration.faceScoreThreshold)
    }
  }, 60_000)
})

describeWithSharedData('defaceFile on the head CT stored in HU with its padding far below air', () => {
  // The series stores HU + 1024 with padding 0. Stored as HU with the padding at -3024, as many
  // scanners write it, the padding once made the network see the air as grey and the face stayed
  // (FAIL, 2 views still a face); with a third of the scan padding the renderer drew the air as skin.
  for (const radius of [1, 0.9]) {
    it(`padding outside a circle of ${radius} of the half-width: PASS, the face set to air, not to padding`, async () => {
      const ct = await readVolume(sharedPath('dicom', 'slicer_ctheadaxial_quarter'))
      const [nx, ny] = ct.size
      const hu = Int16Array.from(ct.data, (v, i) => {
        const x = i % nx
        const y = Math.floor(i / nx) % ny
        return v === 0 || Math.hypot(x - nx / 2, y - ny / 2) > (radius * nx) / 2 ? -3024 : (v as number) - 1024
      })
      const input = join(dir, `ct-hu-${radius}.nii.gz`)
      await writeVolume({ ...withVoxels(ct, hu), source: { path: input, format: 'nifti', notes: [] } }, input)
      const output = join(dir, `ct-hu-${radius}_defaced.nii.gz`)
      const result = await defaceFile(input, { output, models })
      expect(result.verdict).toBe('PASS')
      expect(result.voxels.face).toBeGreaterThan(5000)
      const defaced = await readVolume(output)
      let setToPadding = 0
      for (let i = 0; i < hu.length; i++) if (defaced.data[i] !== hu[i] && (defaced.data[i] as number) < -1100) setToPadding++
      expect(setToPadding).toBe(0)
    }, 60_000)
  }
})
