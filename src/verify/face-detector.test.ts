import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { readVolume } from '../io/read-volume.js'
import { canonicalGeometry, canonicalTransformOf, toCanonicalVoxels } from '../io/canonical-grid.js'
import { orientationCode } from '../io/orientation.js'
import type { Volume } from '../io/volume.js'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'
import { describeBox, descriptorDistance, detectFaces, findFace, loadFaceModel, type FaceBox, type FaceModel } from './face-detector.js'
import { loadFaceGallery, type FaceGallery } from './face-gallery.js'
import { planeDeface } from './plane-deface.js'
import { DEFAULT_VIEWS, renderSkinViews, skinThreshold, type RenderedView, type ViewAngle } from './render-surface.js'

/** The bundled sample: IXI012, a real T1 head with a full face, stored PSR. */
const SAMPLE = join(import.meta.dirname, '..', '..', 'sample-volumes', 'IXI012-HH-1211_T1.nii.gz')
const SAMPLE_ID = 'IXI012-HH-1211_T1'
const FRONT: ViewAngle = { yaw: 0, pitch: 0 }
const FRONTAL_VIEWS = DEFAULT_VIEWS.filter((v) => v.yaw === 0)

let model: FaceModel
let gallery: FaceGallery
let threshold: number
let sample: Volume
let sampleFront: RenderedView

beforeAll(async () => {
  ;[model, gallery, sample] = await Promise.all([loadFaceModel(), loadFaceGallery(), readVolume(SAMPLE)])
  threshold = gallery.calibration.faceScoreThreshold
  sampleFront = renderSkinViews(sample, { views: [FRONT] })[0] as RenderedView
})

function inside(box: FaceBox, view: RenderedView, slack = 2): boolean {
  return box.x >= -slack && box.y >= -slack && box.x + box.width <= view.width + slack && box.y + box.height <= view.height + slack
}

async function bestScores(views: RenderedView[]): Promise<number[]> {
  const scores: number[] = []
  for (const view of views) scores.push((await detectFaces(model, view))[0]?.score ?? 0)
  return scores
}

describe('the face detector on a real head (the bundled sample)', () => {
  it('finds the face on the frontal render, with its box, aligned box and 128-D descriptor', async () => {
    const face = await findFace(model, sampleFront)
    expect(face).toBeDefined()
    if (face === undefined) return
    expect(face.score).toBeGreaterThanOrEqual(threshold)
    expect([face.yaw, face.pitch]).toEqual([0, 0])
    expect(inside(face.box, sampleFront)).toBe(true)
    // The face is in the middle of the picture, left to right, and at least a third of it wide.
    expect(Math.abs(face.box.x + face.box.width / 2 - 128)).toBeLessThan(20)
    expect(face.box.width).toBeGreaterThan(256 / 3)
    expect(inside(face.descriptorBox, sampleFront, 30)).toBe(true)
    expect(face.descriptor).toHaveLength(128)
    expect(face.descriptor.every(Number.isFinite)).toBe(true)
  })

  it('describes a given box as findFace described the face', async () => {
    const face = await findFace(model, sampleFront)
    if (face === undefined) throw new Error('no face')
    const again = await describeBox(model, sampleFront, face.descriptorBox)
    expect(descriptorDistance(again, face.descriptor)).toBeLessThan(1e-4)
    // Another box of the same picture is another descriptor.
    const forehead = await describeBox(model, sampleFront, { x: 60, y: 10, width: 130, height: 80 })
    expect(descriptorDistance(forehead, face.descriptor)).toBeGreaterThan(0.2)
  })

  it('lists candidates best first and honours minScore', async () => {
    const candidates = await detectFaces(model, sampleFront)
    expect(candidates.length).toBeGreaterThan(0)
    for (let i = 1; i < candidates.length; i++) expect((candidates[i] as { score: number }).score).toBeLessThanOrEqual((candidates[i - 1] as { score: number }).score)
    expect(await findFace(model, sampleFront, { minScore: 0.9999 })).toBeUndefined()
    expect(await detectFaces(model, sampleFront, { minScore: 0.9999 })).toEqual([])
  })

  it('finds nothing on a blank picture', async () => {
    const blank: RenderedView = { ...FRONT, width: 256, height: 256, pixels: new Uint8Array(256 * 256), hitFraction: 0 }
    expect(await findFace(model, blank)).toBeUndefined()
  })

  it('knows the sample again from a slightly different angle (rank-1 against the gallery)', async () => {
    const moved = renderSkinViews(sample, { views: [{ yaw: 7, pitch: 5 }] })[0] as RenderedView
    const face = await findFace(model, moved, { minScore: threshold })
    if (face === undefined) throw new Error('no face on the moved view')
    const distances = gallery.heads.flatMap((head) => {
      const entry = head.views.find((v) => v.yaw === 0 && v.pitch === 0)
      return entry === undefined ? [] : [{ id: head.id, distance: descriptorDistance(face.descriptor, entry.descriptor) }]
    })
    distances.sort((a, b) => a.distance - b.distance)
    expect(distances[0]?.id).toBe(SAMPLE_ID)
    expect(distances[0]?.distance).toBeLessThan(gallery.calibration.maxMatchDistance)
  })

  it('refuses a tiny-detector input size that is not a multiple of 32', async () => {
    await expect(loadFaceModel({ inputSize: 100 })).rejects.toThrow(/multiple of 32/)
  })

  it('measures descriptor distances', () => {
    expect(descriptorDistance([0, 0, 0], [3, 4, 0])).toBe(5)
    expect(() => descriptorDistance([0], [0, 1])).toThrow(/1 and 2 values/)
  })
})

/**
 * The plane defacer works in the canonical grid: every voxel it changed lies in one box that is
 * anterior to the middle of the head and well below the vertex, and inside that box every voxel
 * is air.
 */
function expectAnteriorInferiorBox(before: Volume, after: Volume): void {
  const transform = canonicalTransformOf(before)
  const { size, spacing } = canonicalGeometry(transform)
  const [nx, ny, nz] = size
  const a = toCanonicalVoxels(before.data, transform)
  const b = toCanonicalVoxels(after.data, transform)
  let minY = Infinity
  let maxZ = -Infinity
  let changed = 0
  let i = 0
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (a[i] === b[i]) continue
        changed++
        minY = Math.min(minY, y)
        maxZ = Math.max(maxZ, z)
      }
    }
  }
  expect(changed).toBeGreaterThan(1000)
  expect(minY).toBeGreaterThan(ny / 2)
  expect((nz - 1 - maxZ) * spacing[2]).toBeGreaterThan(60)
  let air = Infinity
  for (const v of a) air = Math.min(air, v)
  let notAir = 0
  for (let z = 0; z <= maxZ; z++) {
    for (let y = minY; y < ny; y++) {
      for (let x = 0; x < nx; x++) if (b[x + nx * (y + ny * z)] !== air) notAir++
    }
  }
  expect(notAir).toBe(0)
}

describe('a face removed from a real head (the bundled sample, plane-defaced)', () => {
  it('is stored PSR and loses a box in front of the ears and below the brow', () => {
    expect(orientationCode(sample.direction)).toBe('PSR')
    expectAnteriorInferiorBox(sample, planeDeface(sample))
  })

  it('shows no face on the frontal views, where the original shows one', async () => {
    const t = skinThreshold(sample)
    const original = await bestScores(renderSkinViews(sample, { threshold: t, views: FRONTAL_VIEWS }))
    const defaced = await bestScores(renderSkinViews(planeDeface(sample, { threshold: t }), { threshold: t, views: FRONTAL_VIEWS }))
    expect(Math.max(...original)).toBeGreaterThanOrEqual(threshold)
    expect(Math.max(...defaced)).toBeLessThan(threshold)
  })
})

describeWithSharedData('the face detector on the shared data', () => {
  it('finds no face on any view of the skull-stripped control', async () => {
    const volume = await readVolume(sharedPath('controls', 'MR_Gd_skullstripped.nii.gz'))
    const scores = await bestScores(renderSkinViews(volume))
    expect(scores).toHaveLength(15)
    expect(Math.max(...scores)).toBeLessThan(threshold)
  })

  it.each(['IXI217-HH-1638', 'IXI255-HH-1882'])('finds the face of %s on the frontal views, and none once it is plane-defaced', async (id) => {
    const volume = await readVolume(sharedPath('heads', `${id}_T1.nii.gz`))
    expect(orientationCode(volume.direction)).toBe('PSR')
    const t = skinThreshold(volume)
    const defacedVolume = planeDeface(volume, { threshold: t })
    expectAnteriorInferiorBox(volume, defacedVolume)
    const original = await bestScores(renderSkinViews(volume, { threshold: t, views: FRONTAL_VIEWS }))
    const defaced = await bestScores(renderSkinViews(defacedVolume, { threshold: t, views: FRONTAL_VIEWS }))
    expect(original.filter((s) => s >= threshold).length).toBeGreaterThanOrEqual(2)
    expect(Math.max(...defaced)).toBeLessThan(threshold)
  })
})
