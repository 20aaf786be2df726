import { basename, resolve } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Geometry, Mat3, Vec3, Volume } from '../io/volume.js'
import { readVolume } from '../io/read-volume.js'
import { canonicalGeometry, toCanonicalVoxels, type CanonicalTransform } from '../io/canonical-grid.js'
import { geometryOf } from '../io/volume.js'
import { mat3Vec3 } from '../io/matrix.js'
import { LABELS, loadSegmentationModel, segmentHead, type SegmentationModel } from './segment-head.js'
import { describeWithSharedData, sharedFiles, sharedPath } from '../../test/shared-data.js'

const SAMPLE = resolve(import.meta.dirname, '../../sample-volumes/IXI012-HH-1211_T1.nii.gz')

/** RAS mm centroid of the voxels carrying `label`. */
function centroidRas(geometry: Geometry, labels: Uint8Array, label: number): Vec3 {
  const [nx, ny] = geometry.size
  const sum: Vec3 = [0, 0, 0]
  let count = 0
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== label) continue
    const index: Vec3 = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]
    const lps = mat3Vec3(geometry.direction, index.map((v, a) => v * (geometry.spacing[a] as number)) as Vec3)
    sum[0] -= (geometry.origin[0] + lps[0])
    sum[1] -= (geometry.origin[1] + lps[1])
    sum[2] += geometry.origin[2] + lps[2]
    count++
  }
  return sum.map((s) => s / count) as Vec3
}

/** The same head stored with its voxel axes permuted and flipped; world positions unchanged. */
function reorder(volume: Volume, axes: [number, number, number], flipped: [boolean, boolean, boolean]) {
  const transform: CanonicalTransform = { axes, flipped, original: geometryOf(volume) }
  const data = toCanonicalVoxels(volume.data, transform)
  return { volume: { ...volume, ...canonicalGeometry(transform), data }, transform }
}

let model: SegmentationModel
beforeAll(async () => {
  model = await loadSegmentationModel()
})

describe('segmentation of the bundled sample', () => {
  it('finds a face anterior and inferior to the brain', async () => {
    const volume = await readVolume(SAMPLE)
    const { labels, counts } = await segmentHead(volume, model)
    expect(counts.face).toBeGreaterThan(1000)
    expect(counts.brain).toBeGreaterThan(50_000)
    const face = centroidRas(volume, labels, LABELS.face)
    const brain = centroidRas(volume, labels, LABELS.brain)
    expect(face[1] - brain[1]).toBeGreaterThan(40) // anterior
    expect(face[2] - brain[2]).toBeLessThan(-20) // inferior
  })

  it('gives the same mask, permuted and flipped alike, for the volume stored with permuted and flipped axes', async () => {
    const volume = await readVolume(SAMPLE)
    const { labels } = await segmentHead(volume, model)
    const { volume: shuffled, transform } = reorder(volume, [2, 0, 1], [true, false, true])
    const { labels: shuffledLabels } = await segmentHead(shuffled, model)
    expect(Buffer.from(shuffledLabels).equals(Buffer.from(toCanonicalVoxels(labels, transform)))).toBe(true)
  })

  it('gives the same mask for the volume stored with an offset, its air at -1000', async () => {
    // Beyond the field of view the grid once read 0, which for this scan is brighter than anything in it.
    const volume = await readVolume(SAMPLE)
    const { labels } = await segmentHead(volume, model)
    const slope = volume.scaling?.slope ?? 1
    const offset: Volume = { ...volume, data: Float32Array.from(volume.data, (v) => (v as number) * slope - 1000), pixelType: 'float32' }
    delete offset.scaling
    const { labels: offsetLabels } = await segmentHead(offset, model)
    expect(Buffer.from(offsetLabels).equals(Buffer.from(labels))).toBe(true)
  })

  it('is deterministic', async () => {
    const volume = await readVolume(SAMPLE)
    const a = await segmentHead(volume, model)
    const b = await segmentHead(volume, model)
    expect(Buffer.from(a.labels).equals(Buffer.from(b.labels))).toBe(true)
  })
})

/**
 * The head resampled onto a grid turned by `degrees` about the left-right axis (trilinear), with
 * a header that says so: a truly oblique acquisition, which the canonical reordering cannot undo.
 */
function tilted(volume: Volume, degrees: number): Volume {
  const t = (degrees * Math.PI) / 180
  const [c, s] = [Math.cos(t), Math.sin(t)]
  // Voxel axis 1 and 2 of the new grid, in the old grid's voxel axes (the sample is PSR: axis 0 is
  // anterior-posterior, 1 superior-inferior, 2 left-right, so the turn mixes axes 0 and 1).
  const rotation: Mat3 = [c, -s, 0, s, c, 0, 0, 0, 1]
  const [nx, ny, nz] = volume.size
  const centre = [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]
  const data = new Float32Array(volume.data.length)
  const slope = volume.scaling?.slope ?? 1
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const p = mat3Vec3(rotation, [x - (centre[0] as number), y - (centre[1] as number), z - (centre[2] as number)])
        const q = p.map((v, a) => v + (centre[a] as number))
        const f = q.map(Math.floor)
        if (f.some((v, a) => v < 0 || v >= (volume.size[a] as number) - 1)) continue
        let value = 0
        for (let corner = 0; corner < 8; corner++) {
          const at = f.map((v, a) => v + ((corner >> a) & 1))
          const w = q.reduce((prod, v, a) => prod * ((corner >> a) & 1 ? v - (f[a] as number) : 1 - (v - (f[a] as number))), 1)
          value += w * (volume.data[(at[0] as number) + nx * ((at[1] as number) + ny * (at[2] as number))] as number)
        }
        data[x + nx * (y + ny * z)] = value * slope
      }
    }
  }
  // Voxel axis v of the new grid runs along rotation's column v in old voxel axes.
  const direction = new Array<number>(9).fill(0)
  for (let r = 0; r < 3; r++) for (let col = 0; col < 3; col++) for (let k = 0; k < 3; k++) direction[r * 3 + col]! += (volume.direction[r * 3 + k] as number) * (rotation[k * 3 + col] as number)
  const centreWorld = mat3Vec3(volume.direction, centre.map((v, a) => v * (volume.spacing[a] as number)) as Vec3).map((v, a) => v + (volume.origin[a] as number))
  const offset = mat3Vec3(direction as Mat3, centre.map((v, a) => -v * (volume.spacing[a] as number)) as Vec3)
  const tiltedVolume: Volume = { ...volume, data, pixelType: 'float32', direction: direction as Mat3, origin: centreWorld.map((v, a) => v + (offset[a] as number)) as Vec3 }
  delete tiltedVolume.scaling
  return tiltedVolume
}

describe('segmentation of an oblique acquisition', () => {
  it('finds the face anterior and inferior to the brain on a grid tilted by 25 degrees', async () => {
    const volume = tilted(await readVolume(SAMPLE), 25)
    const { labels, counts } = await segmentHead(volume, model)
    expect(counts.face).toBeGreaterThan(1000)
    const face = centroidRas(volume, labels, LABELS.face)
    const brain = centroidRas(volume, labels, LABELS.brain)
    expect(face[1] - brain[1]).toBeGreaterThan(40)
    expect(face[2] - brain[2]).toBeLessThan(-20)
  })
})

describeWithSharedData('segmentation of other contrasts', () => {
  it('finds the face anterior and inferior to the brain on the FLAIR', async () => {
    const volume = await readVolume(sharedPath('heads', 'Subj1_FL.nii.gz'))
    const { labels, counts } = await segmentHead(volume, model)
    expect(counts.face).toBeGreaterThan(1000)
    const face = centroidRas(volume, labels, LABELS.face)
    const brain = centroidRas(volume, labels, LABELS.brain)
    expect(face[1] - brain[1]).toBeGreaterThan(40)
    expect(face[2] - brain[2]).toBeLessThan(-20)
  })

  it('finds the face on the head CT, in front of the rest of the head', async () => {
    const volume = await readVolume(sharedPath('dicom', 'slicer_ctheadaxial_quarter'))
    const { labels, counts } = await segmentHead(volume, model)
    expect(counts.face).toBeGreaterThan(1000)
    const face = centroidRas(volume, labels, LABELS.face)
    const head = centroidRas(volume, labels, LABELS.head)
    expect(face[1] - head[1]).toBeGreaterThan(30)
  })
})

describeWithSharedData('the brain masks of the 12 IXI heads', () => {
  for (const mask of sharedFiles('brainmasks')) {
    const id = basename(mask).replace('_DLMUSE.nii.gz', '')
    it(`${id}: no brain-mask voxel is labelled face or ears`, async () => {
      const [volume, brain] = await Promise.all([readVolume(sharedPath('heads', `${id}.nii.gz`)), readVolume(mask)])
      const { labels } = await segmentHead(volume, model)
      let inside = 0
      for (let i = 0; i < labels.length; i++) if ((brain.data[i] as number) > 0 && (labels[i] === LABELS.face || labels[i] === LABELS.ears)) inside++
      expect(inside).toBe(0)
    })
  }
})

describeWithSharedData('segmentation of the skull-stripped control', () => {
  it('finds no face', async () => {
    const volume = await readVolume(sharedPath('controls', 'MR_Gd_skullstripped.nii.gz'))
    const { counts } = await segmentHead(volume, model)
    expect(counts.face).toBe(0)
  })
})
