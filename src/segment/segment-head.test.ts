import { resolve } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Geometry, Vec3, Volume } from '../io/volume.js'
import { readVolume } from '../io/read-volume.js'
import { canonicalGeometry, toCanonicalVoxels, type CanonicalTransform } from '../io/canonical-grid.js'
import { geometryOf } from '../io/volume.js'
import { mat3Vec3 } from '../io/matrix.js'
import { LABELS, loadSegmentationModel, segmentHead, type SegmentationModel } from './segment-head.js'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'

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

  it('is deterministic', async () => {
    const volume = await readVolume(SAMPLE)
    const a = await segmentHead(volume, model)
    const b = await segmentHead(volume, model)
    expect(Buffer.from(a.labels).equals(Buffer.from(b.labels))).toBe(true)
  })
})

describeWithSharedData('segmentation of the skull-stripped control', () => {
  it('finds no face', async () => {
    const volume = await readVolume(sharedPath('controls', 'MR_Gd_skullstripped.nii.gz'))
    const { counts } = await segmentHead(volume, model)
    expect(counts.face).toBe(0)
  })
})
