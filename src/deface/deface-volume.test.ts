import { describe, expect, it } from 'vitest'
import { LABELS } from '../segment/segment-head.js'
import { makeHeadPhantom, phantomLabelMap } from '../../test/phantom/head-phantom.js'
import { defaceVolume, weightAt } from './deface-volume.js'
import { distanceToMaskMm } from '../voxels/distance-transform.js'
import { indexedVolume } from '../../test/synthetic-volume.js'
import { voxelCount, type Vec3 } from '../io/volume.js'

describe('defacing a phantom', () => {
  const phantom = makeHeadPhantom({ contrast: 'T1', orientation: 'PSR', spacing: [2, 2, 2], noise: 4, seed: 2 })
  const labels = phantomLabelMap(phantom)

  for (const mode of ['remove', 'blur'] as const) {
    it(`${mode}: changes only the face and the air within 10 mm of it, never the brain or its margin`, () => {
      const result = defaceVolume(phantom.volume, labels, { mode, brainMarginMm: 5, ears: false })
      expect(result.faceFound).toBe(true)
      expect(result.volume.pixelType).toBe(phantom.volume.pixelType)
      expect(result.volume.size).toEqual(phantom.volume.size)
      expect(result.volume.direction).toEqual(phantom.volume.direction)
      expect(result.brainVoxelsChanged).toBe(0)
      const brain = new Uint8Array(labels.length)
      labels.forEach((l, i) => (brain[i] = l === LABELS.brain ? 1 : 0))
      const toBrain = distanceToMaskMm(brain, phantom.volume.size, phantom.volume.spacing)
      const face = Uint8Array.from(labels, (l) => (l === LABELS.face ? 1 : 0))
      const toFace = distanceToMaskMm(face, phantom.volume.size, phantom.volume.spacing)
      const inRegion = (i: number) => labels[i] === LABELS.face || (labels[i] === LABELS.background && (toFace[i] as number) <= 10)
      let changedFace = 0
      let faceCount = 0
      let outsideRegion = 0
      let outsideMask = 0
      let withinMargin = 0
      for (let i = 0; i < labels.length; i++) {
        const changed = result.volume.data[i] !== phantom.volume.data[i]
        if (changed && weightAt(result.weight, i, phantom.volume.size) === 0) outsideRegion++
        if (changed && !inRegion(i)) outsideMask++
        if (changed && (toBrain[i] as number) <= 5) withinMargin++
        if (labels[i] === LABELS.face) {
          faceCount++
          if (changed) changedFace++
        }
      }
      expect(outsideRegion).toBe(0)
      expect(outsideMask).toBe(0)
      expect(withinMargin).toBe(0)
      // Nearly all of the face changes (the rest is where the face already equals background).
      expect(changedFace / faceCount).toBeGreaterThan(0.5)
    })
  }

  it('remove sets the face to background (0 on MR) and keeps the ears unless asked', () => {
    const kept = defaceVolume(phantom.volume, labels, { mode: 'remove', brainMarginMm: 5, ears: false })
    const gone = defaceVolume(phantom.volume, labels, { mode: 'remove', brainMarginMm: 5, ears: true })
    let faceNonZero = 0
    let earsChangedWhenKept = 0
    let earsNonZeroWhenRemoved = 0
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] === LABELS.face && weightAt(kept.weight, i, phantom.volume.size) === 1 && kept.volume.data[i] !== 0) faceNonZero++
      if (labels[i] === LABELS.ears && kept.volume.data[i] !== phantom.volume.data[i] && weightAt(kept.weight, i, phantom.volume.size) === 0) earsChangedWhenKept++
      if (labels[i] === LABELS.ears && weightAt(gone.weight, i, phantom.volume.size) === 1 && gone.volume.data[i] !== 0) earsNonZeroWhenRemoved++
    }
    expect(faceNonZero).toBe(0)
    expect(earsChangedWhenKept).toBe(0)
    expect(earsNonZeroWhenRemoved).toBe(0)
    expect(gone.changedVoxels).toBeGreaterThan(kept.changedVoxels)
  })

  it('remove also clears a dim skin layer that the labels call air, up to 10 mm from the face and no further', () => {
    // A real network stops the face about a voxel inside the skin; the partial-volume layer
    // outside it, labelled background, must not survive as a ghost of the face.
    const face = Uint8Array.from(labels, (l) => (l === LABELS.face ? 1 : 0))
    const toFace = distanceToMaskMm(face, phantom.volume.size, phantom.volume.spacing)
    // Next to the tissue that stays the edge is feathered, so the layer is judged away from it.
    const kept = Uint8Array.from(labels, (l) => (l !== LABELS.face && l !== LABELS.background ? 1 : 0))
    const toKept = distanceToMaskMm(kept, phantom.volume.size, phantom.volume.spacing)
    const dimSkin = 60
    const data = Float32Array.from(phantom.volume.data, (v, i) => (labels[i] === LABELS.background && (toFace[i] as number) <= 20 ? dimSkin : (v as number)))
    const result = defaceVolume({ ...phantom.volume, data, pixelType: 'float32' }, labels, { mode: 'remove', brainMarginMm: 5, ears: false })
    let layer = 0
    let layerLeft = 0
    let beyond = 0
    let beyondChanged = 0
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] !== LABELS.background) continue
      const d = toFace[i] as number
      if (d > 0 && d <= 4 && (toKept[i] as number) > 4) {
        layer++
        if (result.volume.data[i] !== 0) layerLeft++
      } else if (d > 12 && d <= 20) {
        beyond++
        if (result.volume.data[i] !== dimSkin) beyondChanged++
      }
    }
    expect(layer).toBeGreaterThan(100)
    expect(layerLeft).toBe(0)
    expect(beyond).toBeGreaterThan(100)
    expect(beyondChanged).toBe(0)
  })

  it('on a 1 mm grid the air shell, measured between 2 mm blocks, still reaches about 10 mm', () => {
    // A face cube in air that is dim but not empty: what lies within 10 mm goes, give or take a block.
    const size: Vec3 = [60, 60, 60]
    const volume = indexedVolume({ size, spacing: [1, 1, 1], pixelType: 'uint8' })
    volume.data.fill(50)
    const cube = new Uint8Array(voxelCount(size))
    for (let z = 20; z < 40; z++) for (let y = 20; y < 40; y++) for (let x = 20; x < 40; x++) cube[x + 60 * (y + 60 * z)] = 1
    const cubeLabels = Uint8Array.from(cube, (c) => (c ? LABELS.face : LABELS.background))
    const toCube = distanceToMaskMm(cube, size, [1, 1, 1])
    const result = defaceVolume(volume, cubeLabels, { mode: 'remove', brainMarginMm: 5, ears: false })
    let nearLeft = 0
    let farChanged = 0
    for (let i = 0; i < cube.length; i++) {
      const d = toCube[i] as number
      if (d > 0 && d <= 8 && result.volume.data[i] !== 0) nearLeft++
      if (d > 12.5 && result.volume.data[i] !== 50) farChanged++
    }
    expect(nearLeft).toBe(0)
    expect(farChanged).toBe(0)
  })

  it('the edge is feathered: partly replaced voxels surround the fully replaced ones', () => {
    const { weight } = defaceVolume(phantom.volume, labels, { mode: 'remove', brainMarginMm: 5, ears: false })
    let partial = 0
    for (const w of weight.values) if (w > 0 && w < 1) partial++
    expect(partial).toBeGreaterThan(100)
  })

  it('a CT phantom gets air (about -1000 HU), not 0', () => {
    const ct = makeHeadPhantom({ contrast: 'CT', orientation: 'LPS', spacing: [2, 2, 2] })
    const result = defaceVolume(ct.volume, phantomLabelMap(ct), { mode: 'remove', brainMarginMm: 5, ears: false })
    expect(result.backgroundValue).toBeCloseTo(-1000, 0)
    expect(result.brainVoxelsChanged).toBe(0)
  })

  it('an MR whose air is stored as -1000 gets its own air, not a 0 brighter than its skin', () => {
    const air = Float32Array.from(phantom.volume.data, (v, i) => (phantom.labels.head[i] ? (v as number) : -1000))
    const result = defaceVolume({ ...phantom.volume, data: air, pixelType: 'float32' }, labels, { mode: 'remove', brainMarginMm: 5, ears: false })
    expect(result.backgroundValue).toBe(-1000)
  })

  it('no face: the output is the input, voxel for voxel', () => {
    const control = makeHeadPhantom({ contrast: 'T1', orientation: 'RAS', face: false })
    const result = defaceVolume(control.volume, phantomLabelMap(control), { mode: 'remove', brainMarginMm: 5, ears: true })
    expect(result.faceFound).toBe(false)
    expect(result.changedVoxels).toBe(0)
    expect(result.volume.data).toBe(control.volume.data)
  })

  it('is deterministic in both modes', () => {
    for (const mode of ['remove', 'blur'] as const) {
      const a = defaceVolume(phantom.volume, labels, { mode, brainMarginMm: 5, ears: false })
      const b = defaceVolume(phantom.volume, labels, { mode, brainMarginMm: 5, ears: false })
      expect(Buffer.from(a.volume.data.buffer).equals(Buffer.from(b.volume.data.buffer))).toBe(true)
    }
  })
})
