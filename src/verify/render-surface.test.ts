import { describe, expect, it } from 'vitest'
import { readVolume } from '../io/read-volume.js'
import { realIntensities, withVoxels, type Volume } from '../io/volume.js'
import { makeHeadPhantom, type HeadPhantom, type HeadPhantomOptions } from '../../test/phantom/head-phantom.js'
import { describeWithSharedData, sharedPath } from '../../test/shared-data.js'
import { DEFAULT_VIEWS, renderSkinLooks, renderSkinViews, skinLevels, skinThreshold, type RenderedView, type ViewAngle } from './render-surface.js'

const FRONT: ViewAngle = { yaw: 0, pitch: 0 }

const phantoms = new Map<string, HeadPhantom>()
/** Phantoms take a fraction of a second each to build, and several tests share them. */
function phantom(options: HeadPhantomOptions): HeadPhantom {
  const key = JSON.stringify(options)
  let made = phantoms.get(key)
  if (made === undefined) {
    made = makeHeadPhantom(options)
    phantoms.set(key, made)
  }
  return made
}

const T1: HeadPhantomOptions = { contrast: 'T1', orientation: 'RAS' }

function frontal(volume: Volume, options: { threshold?: number; headMask?: Uint8Array } = {}): RenderedView {
  return renderSkinViews(volume, { ...options, views: [FRONT] })[0] as RenderedView
}

function mirrored(view: RenderedView): Uint8Array {
  const out = new Uint8Array(view.pixels.length)
  for (let row = 0; row < view.height; row++) {
    for (let column = 0; column < view.width; column++) {
      out[row * view.width + column] = view.pixels[row * view.width + view.width - 1 - column] as number
    }
  }
  return out
}

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number))
  return sum / a.length
}

/** Intersection over union of the pixels where the ray met skin. */
function silhouetteOverlap(a: Uint8Array, b: Uint8Array): number {
  let both = 0
  let either = 0
  for (let i = 0; i < a.length; i++) {
    const inA = (a[i] as number) > 0
    const inB = (b[i] as number) > 0
    if (inA && inB) both++
    if (inA || inB) either++
  }
  return both / either
}

/** Where two renders of one size differ clearly: the centroid (in pixels) and the count. */
function differenceCentroid(a: RenderedView, b: RenderedView): { row: number; column: number; count: number } {
  let row = 0
  let column = 0
  let count = 0
  for (let i = 0; i < a.pixels.length; i++) {
    if (Math.abs((a.pixels[i] as number) - (b.pixels[i] as number)) < 30) continue
    row += Math.floor(i / a.width)
    column += i % a.width
    count++
  }
  return { row: row / count, column: column / count, count }
}

/** A copy of a phantom whose voxels inside `where` (RAS mm) are set to `value`. */
function edited(p: HeadPhantom, value: number, where: (x: number, y: number, z: number, index: number) => boolean): Volume {
  const { volume } = p
  // Only for unrotated RAS phantoms: LPS origin, axes along R, A, S.
  expect(volume.direction).toEqual([-1, 0, 0, 0, -1, 0, 0, 0, 1])
  const data = volume.data.slice()
  const [nx, ny, nz] = volume.size
  const [sx, sy, sz] = volume.spacing
  const [ox, oy, oz] = [-volume.origin[0], -volume.origin[1], volume.origin[2]]
  let i = 0
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let c = 0; c < nx; c++, i++) {
        if (where(ox + c * sx, oy + j * sy, oz + k * sz, i)) data[i] = value
      }
    }
  }
  return withVoxels(volume, data)
}

describe('renderSkinViews on phantoms', () => {
  it('renders the 15 default views, from above to below and from the right round to the left', () => {
    const views = renderSkinViews(phantom(T1).volume)
    expect(views.map(({ yaw, pitch }) => [yaw, pitch])).toEqual([
      [-60, 20], [-30, 20], [0, 20], [30, 20], [60, 20],
      [-60, 0], [-30, 0], [0, 0], [30, 0], [60, 0],
      [-60, -20], [-30, -20], [0, -20], [30, -20], [60, -20],
    ])
    expect(DEFAULT_VIEWS).toHaveLength(15)
    for (const view of views) {
      expect(view.width).toBe(256)
      expect(view.height).toBe(256)
      expect(view.pixels).toHaveLength(256 * 256)
      // The whole head fits: well inside the picture, with black all round.
      expect(view.hitFraction).toBeGreaterThan(0.35)
      expect(view.hitFraction).toBeLessThan(0.6)
      for (let i = 0; i < 256; i++) {
        expect(view.pixels[i]).toBe(0)
        expect(view.pixels[i * 256]).toBe(0)
        expect(view.pixels[i * 256 + 255]).toBe(0)
      }
    }
  })

  it('sees a symmetric head from in front as symmetric', () => {
    const view = frontal(phantom(T1).volume)
    expect(meanAbsoluteDifference(view.pixels, mirrored(view))).toBeLessThan(0.5)
    expect(silhouetteOverlap(view.pixels, mirrored(view))).toBeGreaterThan(0.995)
  })

  it('shows the face in the middle of the frontal view', () => {
    const p = phantom(T1)
    const faceless = edited(p, 0, (_x, _y, _z, i) => p.labels.face[i] === 1)
    const { row, column, count } = differenceCentroid(frontal(p.volume), frontal(faceless))
    expect(count / (256 * 256)).toBeGreaterThan(0.05)
    expect(Math.abs(column - 128)).toBeLessThan(3)
    // Below the centre of the head, above its bottom edge.
    expect(row).toBeGreaterThan(128)
    expect(row).toBeLessThan(200)
  })

  it("puts the patient's right on the picture's left and the top of the head at the top", () => {
    const p = phantom(T1)
    // A ball in the air in front of the right side of the forehead.
    const marked = edited(p, 120, (x, y, z) => (x - 40) ** 2 + (y - 110) ** 2 + (z - 60) ** 2 < 8 ** 2)
    const { row, column, count } = differenceCentroid(frontal(p.volume), frontal(marked))
    expect(count).toBeGreaterThan(100)
    expect(column).toBeLessThan(128 - 25)
    expect(row).toBeLessThan(128 - 25)
  })

  it('renders the same picture whatever the voxel order', () => {
    const reference = frontal(phantom(T1).volume)
    for (const orientation of ['PSR', 'LPI'] as const) {
      const view = frontal(phantom({ ...T1, orientation }).volume)
      expect(meanAbsoluteDifference(view.pixels, reference.pixels), orientation).toBeLessThan(0.5)
      expect(silhouetteOverlap(view.pixels, reference.pixels), orientation).toBeGreaterThan(0.995)
    }
  })

  it('casts rays in patient space, so an oblique grid shows the same upright face', () => {
    const reference = frontal(phantom(T1).volume)
    const view = frontal(phantom({ ...T1, obliqueDegrees: [6, 0, 10] }).volume)
    expect(silhouetteOverlap(view.pixels, reference.pixels)).toBeGreaterThan(0.97)
    expect(meanAbsoluteDifference(view.pixels, reference.pixels)).toBeLessThan(8)
  })

  it('sees a symmetric head from yaw +30 as the mirror image of yaw -30', () => {
    const [left, right] = renderSkinViews(phantom(T1).volume, { views: [{ yaw: -30, pitch: 10 }, { yaw: 30, pitch: 10 }] }) as [RenderedView, RenderedView]
    expect(meanAbsoluteDifference(mirrored(right), left.pixels)).toBeLessThan(0.5)
    expect(meanAbsoluteDifference(right.pixels, left.pixels)).toBeGreaterThan(10)
  })

  it('renders the skin of a CT, not its skull', () => {
    const t1 = frontal(phantom(T1).volume)
    const ct = frontal(phantom({ contrast: 'CT', orientation: 'LPI' }).volume)
    expect(silhouetteOverlap(ct.pixels, t1.pixels)).toBeGreaterThan(0.97)
    expect(Math.abs(ct.hitFraction - t1.hitFraction)).toBeLessThan(0.02)
  })

  it('renders the skin of a CT whose padding at -3024 HU fills more than a quarter of it', () => {
    const { volume } = phantom({ contrast: 'CT', orientation: 'LPI' })
    const [nx, ny] = volume.size
    const padded = Float32Array.from(volume.data, (v, i) => (Math.hypot((i % nx) - nx / 2, (Math.floor(i / nx) % ny) - ny / 2) > 0.4 * nx ? -3024 : (v as number)))
    expect(padded.filter((v) => v === -3024).length / padded.length).toBeGreaterThan(0.25)
    const plain = frontal(volume)
    const view = frontal(withVoxels(volume, padded))
    expect(silhouetteOverlap(view.pixels, plain.pixels)).toBeGreaterThan(0.97)
  })

  it('renders a noisy T2 like the clean T1', () => {
    const t1 = frontal(phantom(T1).volume)
    const t2 = frontal(phantom({ contrast: 'T2', orientation: 'PSR', noise: 6 }).volume)
    expect(silhouetteOverlap(t2.pixels, t1.pixels)).toBeGreaterThan(0.97)
  })

  it('renders the skin of a head whose air was set to one value far below the tissue, not a halo round it', () => {
    const p = phantom(T1)
    const air = Float32Array.from(p.volume.data, (v, i) => (p.labels.head[i] ? (v as number) : -1000))
    const t1 = frontal(p.volume)
    const masked = frontal(withVoxels(p.volume, air))
    expect(silhouetteOverlap(masked.pixels, t1.pixels)).toBeGreaterThan(0.97)
    expect(Math.abs(masked.hitFraction - t1.hitFraction)).toBeLessThan(0.02)
  })

  it('renders 6 mm slices nearly as smoothly as 2 mm ones', () => {
    const fine = frontal(phantom(T1).volume)
    const thick = frontal(phantom({ ...T1, spacing: [2, 2, 6] }).volume)
    expect(silhouetteOverlap(thick.pixels, fine.pixels)).toBeGreaterThan(0.97)
    expect(meanAbsoluteDifference(thick.pixels, fine.pixels)).toBeLessThan(5) // 6.7 before the slices were interpolated
  })

  it('gives a brain without a face a much smaller silhouette', () => {
    const head = frontal(phantom(T1).volume)
    const brain = frontal(phantom({ ...T1, face: false }).volume)
    expect(brain.hitFraction).toBeLessThan(0.6 * head.hitFraction)
  })

  it('renders with the threshold it is given', () => {
    const { volume } = phantom(T1)
    // Above the skin (120) and the brain, only fat (235) is left: the scalp and cheeks, in pieces.
    const fat = frontal(volume, { threshold: 200 })
    expect(fat.hitFraction).toBeLessThan(frontal(volume).hitFraction)
    expect(frontal(volume, { threshold: 300 }).hitFraction).toBe(0)
  })

  it('refuses an image size that is not a whole number of pixels', () => {
    const { volume } = phantom(T1)
    expect(() => renderSkinViews(volume, { imageSize: 0 })).toThrow(/image size/)
    expect(() => renderSkinViews(volume, { imageSize: 100.5 })).toThrow(/image size/)
  })
})

describe('renderSkinLooks and skinLevels', () => {
  it('renders each look as renderSkinViews would at its level, from one grid', () => {
    const { volume } = phantom(T1)
    const { skin, faint } = skinLevels(volume)
    expect(skin).toBe(skinThreshold(volume))
    expect(faint).toBeLessThan(skin)
    const side: ViewAngle = { yaw: 30, pitch: 20 }
    const [atSkin, atFaint] = renderSkinLooks(volume, [
      { threshold: skin, views: [FRONT, side] },
      { threshold: faint, views: [FRONT] },
    ]) as [RenderedView[], RenderedView[]]
    expect(atSkin.map((v) => v.pixels)).toEqual(renderSkinViews(volume, { threshold: skin, views: [FRONT, side] }).map((v) => v.pixels))
    // The fainter field is the same one shifted, so it differs from a grid built at that level by rounding only.
    const direct = frontal(volume, { threshold: faint })
    expect(atFaint).toHaveLength(1)
    expect(meanAbsoluteDifference((atFaint[0] as RenderedView).pixels, direct.pixels)).toBeLessThan(0.05)
    expect((atFaint[0] as RenderedView).hitFraction).toBeCloseTo(direct.hitFraction, 3)
    // and it is a different surface from the skin's: further out, so it covers more of the picture.
    expect((atFaint[0] as RenderedView).hitFraction).toBeGreaterThanOrEqual((atSkin[0] as RenderedView).hitFraction)
    expect(meanAbsoluteDifference((atFaint[0] as RenderedView).pixels, (atSkin[0] as RenderedView).pixels)).toBeGreaterThan(0.5)
  })
})

describe('skinThreshold', () => {
  const cases: Array<[HeadPhantomOptions, number, number]> = [
    // contrast, air, and the darker of skin and the fat under it
    [T1, 0, 120],
    [{ contrast: 'T2', orientation: 'PSR', noise: 6 }, 0, 90],
    [{ contrast: 'CT', orientation: 'LPI' }, -1000, -90],
  ]
  it.each(cases)('lies between air and skin, from the histogram and from the head mask: %o', (options, air, skin) => {
    const { volume, labels } = phantom(options)
    for (const threshold of [skinThreshold(volume), skinThreshold(volume, labels.head)]) {
      expect(threshold).toBeGreaterThan(air + 0.2 * (skin - air))
      expect(threshold).toBeLessThan(air + 0.8 * (skin - air))
    }
  })

  it('is what renderSkinViews uses, from the head mask when it has one', () => {
    const { volume, labels } = phantom(T1)
    const withMask = frontal(volume, { headMask: labels.head })
    expect(withMask.pixels).toEqual(frontal(volume, { threshold: skinThreshold(volume, labels.head) }).pixels)
    expect(frontal(volume).pixels).toEqual(frontal(volume, { threshold: skinThreshold(volume) }).pixels)
  })

  it('refuses a mask of another size', () => {
    const { volume } = phantom(T1)
    expect(() => skinThreshold(volume, new Uint8Array(10))).toThrow(/head mask has 10 voxels/)
    expect(() => skinThreshold(volume, new Uint8Array(volume.data.length))).toThrow(/no boundary/)
  })
})

describeWithSharedData('renderSkinViews on real heads', () => {
  const ixiWithBrainMasks = ['IXI132-HH-1415', 'IXI211-HH-1568', 'IXI255-HH-1882']
  it.each(ixiWithBrainMasks)('puts the threshold of %s nearer air than brain', async (id) => {
    const volume = await readVolume(sharedPath('heads', `${id}_T1.nii.gz`))
    const mask = await readVolume(sharedPath('brainmasks', `${id}_T1_DLMUSE.nii.gz`))
    const values = realIntensities(volume)
    const brain = values.filter((_, i) => (mask.data[i] as number) > 0).sort()
    const brainMedian = brain[brain.length >> 1] as number
    const threshold = skinThreshold(volume)
    expect(threshold / brainMedian).toBeGreaterThan(0.15)
    expect(threshold / brainMedian).toBeLessThan(0.45)
  })

  it('puts the threshold of the CT series between air and skin', async () => {
    const volume = await readVolume(sharedPath('dicom', 'slicer_ctheadaxial_quarter'))
    // This series stores HU + 1024 with no rescale: air is near 0, skin near 1024-1074, bone above 1400.
    expect(volume.scaling).toBeUndefined()
    const threshold = skinThreshold(volume)
    expect(threshold).toBeGreaterThan(1024 - 800)
    expect(threshold).toBeLessThan(1024 - 200)
    const view = frontal(volume, { threshold })
    expect(view.hitFraction).toBeGreaterThan(0.2)
  })

  const heads = ['heads/IXI012-HH-1211_T1.nii.gz', 'heads/T1_head_ext2.nii.gz', 'heads/Subj1_FL.nii.gz', 'heads/chris_t1.nii.gz']
  it.each(heads)('frames the whole head of %s in every view', async (path) => {
    const views = renderSkinViews(await readVolume(sharedPath(...path.split('/'))))
    for (const view of views) {
      expect(view.hitFraction).toBeGreaterThan(0.3)
      expect(view.hitFraction).toBeLessThan(0.65)
    }
  })
})
