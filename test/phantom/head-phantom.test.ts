import { describe, expect, it } from 'vitest'
import { mat3Column, mat3Transpose, mat3Vec3 } from '../../src/io/matrix.js'
import { obliquityDegrees, orientationCode } from '../../src/io/orientation.js'
import type { Vec3, Volume } from '../../src/io/volume.js'
import { type AxisCode, type HeadPhantom, type HeadPhantomOptions, makeHeadPhantom } from './head-phantom.js'

/** Phantoms are built once and shared: each takes a few hundred milliseconds. */
const cache = new Map<string, HeadPhantom>()
function phantom(options: HeadPhantomOptions): HeadPhantom {
  const key = JSON.stringify(options)
  let built = cache.get(key)
  if (built === undefined) {
    built = makeHeadPhantom(options)
    cache.set(key, built)
  }
  return built
}

const LPS_UNIT: Record<string, Vec3> = {
  R: [-1, 0, 0],
  L: [1, 0, 0],
  A: [0, -1, 0],
  P: [0, 1, 0],
  S: [0, 0, 1],
  I: [0, 0, -1],
}

/** RAS position (mm) of the centre of voxel `index`. */
function rasOf(volume: Volume, index: number): Vec3 {
  const [nx, ny] = volume.size
  const steps: Vec3 = [
    (index % nx) * volume.spacing[0],
    (Math.floor(index / nx) % ny) * volume.spacing[1],
    Math.floor(index / (nx * ny)) * volume.spacing[2],
  ]
  const offset = mat3Vec3(volume.direction, steps)
  return [-(volume.origin[0] + offset[0]), -(volume.origin[1] + offset[1]), volume.origin[2] + offset[2]]
}

/** Index of the voxel whose centre is nearest the RAS point. */
function indexAt(volume: Volume, ras: Vec3): number {
  const fromOrigin: Vec3 = [-ras[0] - volume.origin[0], -ras[1] - volume.origin[1], ras[2] - volume.origin[2]]
  const [i, j, k] = mat3Vec3(mat3Transpose(volume.direction), fromOrigin).map((mm, axis) =>
    Math.round(mm / (volume.spacing[axis] as number)),
  ) as Vec3
  return i + volume.size[0] * (j + volume.size[1] * k)
}

function count(label: Uint8Array): number {
  let n = 0
  for (const v of label) n += v
  return n
}

function centroid(volume: Volume, label: Uint8Array): Vec3 {
  const sum: Vec3 = [0, 0, 0]
  let n = 0
  label.forEach((v, index) => {
    if (v === 0) return
    const [x, y, z] = rasOf(volume, index)
    sum[0] += x
    sum[1] += y
    sum[2] += z
    n++
  })
  return sum.map((s) => s / n) as Vec3
}

/** How many voxels of `a` have a voxel of `b` within `mm` (the grid's axes are orthonormal). */
function countNear(volume: Volume, a: Uint8Array, b: Uint8Array, mm: number): number {
  const [nx, ny, nz] = volume.size
  const [sx, sy, sz] = volume.spacing
  const [ri, rj, rk] = [Math.floor(mm / sx), Math.floor(mm / sy), Math.floor(mm / sz)]
  const offsets: Vec3[] = []
  for (let dk = -rk; dk <= rk; dk++) {
    for (let dj = -rj; dj <= rj; dj++) {
      for (let di = -ri; di <= ri; di++) {
        if (Math.hypot(di * sx, dj * sy, dk * sz) <= mm) offsets.push([di, dj, dk])
      }
    }
  }
  // Nearest first, so that most searches stop at once.
  offsets.sort((p, q) => Math.hypot(p[0] * sx, p[1] * sy, p[2] * sz) - Math.hypot(q[0] * sx, q[1] * sy, q[2] * sz))
  let near = 0
  for (let k = 0, index = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, index++) {
        if (a[index] === 0) continue
        for (const [di, dj, dk] of offsets) {
          const ii = i + di
          const jj = j + dj
          const kk = k + dk
          if (ii < 0 || jj < 0 || kk < 0 || ii >= nx || jj >= ny || kk >= nz) continue
          if (b[ii + nx * (jj + ny * kk)] === 1) {
            near++
            break
          }
        }
      }
    }
  }
  return near
}

function distance(a: Vec3, b: Vec3): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])
}

describe('head phantom geometry', () => {
  const codes: AxisCode[] = ['RAS', 'LPS', 'PSR', 'LAS', 'SPL', 'ILA']
  // A small field of view keeps these cheap: only the grid matters here.
  const small = { contrast: 'T1', fieldOfView: [40, 60, 80] as Vec3, spacing: [2, 3, 4] as Vec3 } as const

  it.each(codes)('%s: direction columns, sizes and spacings follow the axis code', (code) => {
    const { volume } = makeHeadPhantom({ ...small, orientation: code })
    const anatomical = { L: 0, R: 0, A: 1, P: 1, S: 2, I: 2 } as const
    for (let c = 0; c < 3; c++) {
      const letter = code[c] as keyof typeof anatomical
      expect(mat3Column(volume.direction, c)).toEqual(LPS_UNIT[letter])
      const axis = anatomical[letter]
      expect(volume.spacing[c]).toBe(small.spacing[axis])
      expect(volume.size[c]).toBe(small.fieldOfView[axis] / small.spacing[axis])
    }
    expect(orientationCode(volume.direction)).toBe(code)
    expect(volume.data.length).toBe(volume.size[0] * volume.size[1] * volume.size[2])
  })

  it('centres the field of view on the same physical point in every orientation', () => {
    const centres = codes.map((code) => {
      const { volume } = makeHeadPhantom({ ...small, orientation: code })
      const first = rasOf(volume, 0)
      const last = rasOf(volume, volume.data.length - 1)
      return first.map((v, r) => (v + (last[r] as number)) / 2) as Vec3
    })
    for (const centre of centres) expect(distance(centre, centres[0]!)).toBeLessThan(1e-9)
  })

  it('tilts the grid by the oblique angles', () => {
    const { volume } = makeHeadPhantom({ ...small, orientation: 'RAS', obliqueDegrees: [12, 0, 0] })
    expect(obliquityDegrees(volume.direction)).toBeCloseTo(12, 6)
    expect(orientationCode(volume.direction)).toBe('RAS')
    // 12 degrees about R takes the A axis up towards S.
    const a = mat3Column(volume.direction, 1)
    expect(-a[1]).toBeCloseTo(Math.cos((12 * Math.PI) / 180), 9)
    expect(a[2]).toBeCloseTo(Math.sin((12 * Math.PI) / 180), 9)
  })

  it('fills in the volume record', () => {
    const { volume } = phantom({ contrast: 'T1', orientation: 'RAS' })
    expect(volume.size).toEqual([100, 120, 120])
    expect(volume.spacing).toEqual([2, 2, 2])
    expect(volume.pixelType).toBe('uint8')
    expect(volume.data).toBeInstanceOf(Uint8Array)
    expect(volume.modality).toBe('MR')
    expect(volume.headerText).toEqual([])
    expect(volume.source).toEqual({ path: '<phantom T1 RAS>', format: 'nifti', notes: [] })
  })
})

describe('head phantom anatomy', () => {
  it('puts the face in front of and below the brain, with the ears at the sides', () => {
    const { volume, labels } = phantom({ contrast: 'T1', orientation: 'RAS' })
    expect(count(labels.face)).toBeGreaterThan(10_000)
    expect(count(labels.ears)).toBeGreaterThan(100)
    const brain = centroid(volume, labels.brain)
    const face = centroid(volume, labels.face)
    expect(face[1]).toBeGreaterThan(brain[1] + 40)
    expect(face[2]).toBeLessThan(brain[2] - 20)
    expect(Math.abs(face[0])).toBeLessThan(1)
    const noseTip = indexAt(volume, [0, 104, -22])
    const eye = indexAt(volume, [32, 70, 3])
    expect([labels.face[noseTip], labels.face[eye]]).toEqual([1, 1])
    let earsNearMidline = 0
    labels.ears.forEach((v, index) => {
      if (v === 1 && Math.abs(rasOf(volume, index)[0]) < 60) earsNearMidline++
    })
    expect(earsNearMidline).toBe(0)
    // A head of realistic size: 150 mm wide and 180 mm long, plus ears and nose.
    const head = labels.head
    const extent = [Infinity, -Infinity, Infinity, -Infinity]
    head.forEach((v, index) => {
      if (v === 0) return
      const [x, y] = rasOf(volume, index)
      extent[0] = Math.min(extent[0]!, x)
      extent[1] = Math.max(extent[1]!, x)
      extent[2] = Math.min(extent[2]!, y)
      extent[3] = Math.max(extent[3]!, y)
    })
    expect(extent[1]! - extent[0]!).toBeGreaterThan(150)
    expect(extent[1]! - extent[0]!).toBeLessThan(175)
    expect(extent[3]! - extent[2]!).toBeGreaterThan(190)
    expect(extent[3]! - extent[2]!).toBeLessThan(215)
  })

  it('keeps face and ears at least 10 mm from the brain, all inside the head', () => {
    const { volume, labels } = phantom({ contrast: 'T1', orientation: 'RAS' })
    expect(countNear(volume, labels.face, labels.brain, 10)).toBe(0)
    expect(countNear(volume, labels.ears, labels.brain, 10)).toBe(0)
    let outsideHead = 0
    let faceAndEar = 0
    for (let i = 0; i < labels.head.length; i++) {
      if ((labels.face[i] || labels.ears[i] || labels.brain[i]) && !labels.head[i]) outsideHead++
      if (labels.face[i] && labels.ears[i]) faceAndEar++
    }
    expect([outsideHead, faceAndEar]).toEqual([0, 0])
  })

  it.each(['PSR', 'LPI'] as const)('is the same head in %s as in RAS', (code) => {
    const ras = phantom({ contrast: 'T1', orientation: 'RAS' })
    const other = phantom({ contrast: 'T1', orientation: code })
    for (const name of ['face', 'brain', 'ears'] as const) {
      const expected = count(ras.labels[name])
      expect(Math.abs(count(other.labels[name]) - expected) / expected).toBeLessThan(0.02)
      expect(distance(centroid(other.volume, other.labels[name]), centroid(ras.volume, ras.labels[name]))).toBeLessThan(2)
    }
  })

  it.each([
    ['an oblique grid', { orientation: 'LAS', obliqueDegrees: [10, -6, 8] }],
    ['anisotropic voxels', { orientation: 'SPL', spacing: [1.5, 2.5, 3] }],
  ] as const)('is the same head on %s', (_, grid) => {
    const straight = phantom({ contrast: 'T1', orientation: 'RAS' })
    const other = phantom({ contrast: 'T1', ...grid } as HeadPhantomOptions)
    const voxelVolume = (volume: Volume): number => volume.spacing[0] * volume.spacing[1] * volume.spacing[2]
    for (const name of ['face', 'brain'] as const) {
      const expected = count(straight.labels[name]) * voxelVolume(straight.volume)
      const found = count(other.labels[name]) * voxelVolume(other.volume)
      expect(Math.abs(found - expected) / expected).toBeLessThan(0.03)
      const shift = distance(centroid(other.volume, other.labels[name]), centroid(straight.volume, straight.labels[name]))
      expect(shift).toBeLessThan(2)
    }
  })

  it('gives a brain-only control with face: false', () => {
    const { volume, labels } = phantom({ contrast: 'T1', orientation: 'RAS', face: false })
    expect(count(labels.face)).toBe(0)
    expect(count(labels.ears)).toBe(0)
    expect(count(labels.brain)).toBeGreaterThan(100_000)
    // (Buffer comparison: toEqual walks 1.4 M elements one by one, taking seconds.)
    expect(Buffer.from(labels.head).equals(Buffer.from(labels.brain))).toBe(true)
    // Nothing but air more than a voxel from the brain (its edge is partial volumed).
    const notAir = Uint8Array.from(volume.data, (v) => (v === 0 ? 0 : 1))
    expect(countNear(volume, notAir, labels.brain, 3.5)).toBe(count(notAir))
  })
})

describe('head phantom contrasts', () => {
  const ventricle: Vec3 = [10, -2, 32]
  const whiteMatter: Vec3 = [30, -20, 30]
  const skullAtVertex: Vec3 = [0, -5, 93]

  it('CT: int16 Hounsfield units, air -1000, brain about 30, bone over 700', () => {
    const { volume, labels } = phantom({ contrast: 'CT', orientation: 'RAS' })
    expect(volume.pixelType).toBe('int16')
    expect(volume.data).toBeInstanceOf(Int16Array)
    expect(volume.modality).toBe('CT')
    expect(volume.data[0]).toBe(-1000)
    expect(volume.data[indexAt(volume, skullAtVertex)]).toBeGreaterThan(700)
    const brain = volume.data[indexAt(volume, whiteMatter)]!
    expect(brain).toBeGreaterThan(15)
    expect(brain).toBeLessThan(45)
    let maxOutsideHead = -Infinity
    volume.data.forEach((v, i) => {
      if (labels.head[i] === 0) maxOutsideHead = Math.max(maxOutsideHead, v)
    })
    // Outside the skin only the partial-volumed edge rises above air.
    expect(maxOutsideHead).toBeLessThan(-400)
  })

  it('T1: white matter over CSF, bone dark; T2: CSF bright', () => {
    const t1 = phantom({ contrast: 'T1', orientation: 'RAS' }).volume
    const t2 = phantom({ contrast: 'T2', orientation: 'RAS' }).volume
    const at = (volume: Volume, ras: Vec3): number => volume.data[indexAt(volume, ras)]!
    expect(at(t1, whiteMatter)).toBeGreaterThan(at(t1, ventricle) + 80)
    expect(at(t1, skullAtVertex)).toBeLessThan(at(t1, whiteMatter))
    expect(at(t2, ventricle)).toBeGreaterThan(at(t2, whiteMatter) + 80)
    expect(at(t2, skullAtVertex)).toBeLessThan(at(t2, whiteMatter))
  })
})

describe('head phantom noise', () => {
  const coarse = { contrast: 'T1', orientation: 'PSR', spacing: [4, 4, 4] as Vec3, noise: 8 } as const

  it('is deterministic for a seed and differs between seeds', () => {
    const a = makeHeadPhantom({ ...coarse, seed: 7 }).volume.data
    const b = makeHeadPhantom({ ...coarse, seed: 7 }).volume.data
    const c = makeHeadPhantom({ ...coarse, seed: 8 }).volume.data
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true)
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false)
  })

  it('adds noise of about the requested size, Rician in MR air', () => {
    const quiet = makeHeadPhantom({ ...coarse, noise: 0 }).volume.data
    const noisy = makeHeadPhantom({ ...coarse, seed: 3 }).volume.data
    let tissueSquares = 0
    let tissue = 0
    let airSum = 0
    let air = 0
    noisy.forEach((v, i) => {
      const clean = quiet[i]!
      if (clean === 0) {
        airSum += v
        air++
      } else if (clean > 60 && clean < 200) {
        // Well above the floor the noise is close to Gaussian.
        tissueSquares += (v - clean) ** 2
        tissue++
      }
    })
    expect(Math.min(tissue, air)).toBeGreaterThan(1000)
    expect(Math.sqrt(tissueSquares / tissue)).toBeCloseTo(8, 0)
    // In air the magnitude of complex noise is Rayleigh: mean sigma * sqrt(pi / 2).
    expect(airSum / air).toBeCloseTo(8 * Math.sqrt(Math.PI / 2), 0)
  })
})
