import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../io/volume.js'
import { toCanonicalVoxels, type CanonicalTransform } from '../io/canonical-grid.js'
import { gaussianBlur3d } from '../voxels/gaussian-blur.js'
import { MODEL_GRID_SIZE, headCentreMm, labelsFromModelGrid, percentiles, normaliseIntensities, placeGrid, resampleToModelGrid } from './model-grid.js'

describe('Gaussian blur', () => {
  it('matches scipy.ndimage.gaussian_filter (reflect, truncate 4)', () => {
    // Reference: np.arange(60) * 37 % 11 reshaped (z, y, x) = (3, 4, 5), sigma (z, y, x) = (0.8, 1.3, 0.6),
    // from /usr/bin/python3 with scipy 1.10.
    const expected = [3.75173, 4.16508, 5.32319, 4.7091, 4.6547, 4.73993, 4.11132, 5.17745, 5.22023, 4.59889, 5.64869, 4.3085, 4.82763, 5.66283, 4.95805, 5.97857, 4.68931, 4.51129, 5.84892, 5.59047, 4.13379, 5.23556, 4.61374, 4.40537, 5.13293, 4.59086, 4.96105, 4.97615, 4.52907, 4.98956, 5.10758, 4.6128, 5.23619, 4.74902, 4.79504, 5.33661, 4.39571, 5.25728, 4.98687, 4.70724, 4.93855, 6.53759, 4.48838, 4.71222, 4.64613, 4.44776, 6.01193, 5.01714, 4.55371, 5.11592, 3.76556, 5.25962, 5.68344, 4.31593, 5.21196, 3.25328, 4.69356, 6.03912, 4.14545, 4.93444]
    const input = Float32Array.from({ length: 60 }, (_, i) => (i * 37) % 11)
    const out = gaussianBlur3d(input, [5, 4, 3], [0.6, 1.3, 0.8])
    out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 4))
  })
})

describe('model grid', () => {
  it('samples a 2.5 mm volume exactly at its voxels when the grids coincide', () => {
    const n = MODEL_GRID_SIZE
    const size: Vec3 = [n, n, n]
    const data = Float32Array.from({ length: n ** 3 }, (_, i) => i % 97)
    const centre = ((n - 1) / 2) * 2.5
    const grid = resampleToModelGrid(data, storedCanonically(size, [2.5, 2.5, 2.5]), placeGrid([centre, centre, centre], [2.5, 2.5, 2.5]))
    // Input is x-fastest; the model grid is z-fastest ([x][y][z]).
    for (const [x, y, z] of [[0, 0, 0], [5, 17, 90], [95, 3, 40]] as Vec3[]) {
      expect(grid[(x * n + y) * n + z]).toBeCloseTo(data[x + n * (y + n * z)] as number, 4)
    }
  })

  it('gives what blurring the whole volume and then sampling it trilinearly gives', () => {
    // 1 mm in x, 0.8 mm in y, 2.5 mm in z: blur on two axes, none on the third; the grid runs
    // past the volume's edges, where samples are 0.
    const size: Vec3 = [70, 90, 40]
    const zooms: Vec3 = [1, 0.8, 2.5]
    let seed = 7
    const data = Float32Array.from({ length: size[0] * size[1] * size[2] }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 100)
    const placement = placeGrid([30, 40, 50], zooms)
    const fast = resampleToModelGrid(data, storedCanonically(size, zooms), placement)
    const sigma = zooms.map((z) => Math.max(2.5 / z - 1, 0) * 0.5) as Vec3
    const blurred = gaussianBlur3d(data, size, sigma)
    const n = MODEL_GRID_SIZE
    let worst = 0
    for (let i = 0; i < n; i += 5) {
      for (let j = 0; j < n; j += 3) {
        for (let k = 0; k < n; k += 2) {
          const c = [i, j, k].map((v, a) => ((placement.offsetMm[a] as number) + v * 2.5) / (zooms[a] as number))
          let expected = 0
          if (c.every((v, a) => v >= 0 && v <= (size[a] as number) - 1)) {
            const f = c.map((v, a) => Math.min(Math.floor(v), (size[a] as number) - 2))
            for (let corner = 0; corner < 8; corner++) {
              const at = f.map((v, a) => v + ((corner >> a) & 1))
              const w = c.reduce((p, v, a) => p * ((corner >> a) & 1 ? v - (f[a] as number) : 1 - (v - (f[a] as number))), 1)
              expected += w * (blurred[(at[0] as number) + size[0] * ((at[1] as number) + size[1] * (at[2] as number))] as number)
            }
          }
          worst = Math.max(worst, Math.abs((fast[(i * n + j) * n + k] as number) - expected))
        }
      }
    }
    expect(worst).toBeLessThan(1e-3)
  })

  it('selects the same percentiles as sorting does, duplicates included', () => {
    let seed = 3
    const values = Float32Array.from({ length: 20011 }, () => Math.floor(((seed = (seed * 16807) % 2147483647) / 2147483647) * 500))
    const sorted = values.slice().sort()
    const numpy = (p: number) => {
      const position = (p / 100) * (sorted.length - 1)
      const lower = Math.floor(position)
      return (sorted[lower] as number) + ((sorted[lower + 1] as number) - (sorted[lower] as number)) * (position - lower)
    }
    for (const ps of [[0.5, 99.5], [13.3, 71.9], [0, 99.99]] as [number, number][]) expect(percentiles(values, ps)).toEqual([numpy(ps[0]), numpy(ps[1])])
  })

  it('normalises by the 0.5th and 99.5th percentiles into [0, 1]', () => {
    const grid = Float32Array.from({ length: 1001 }, (_, i) => i)
    const out = normaliseIntensities(grid)
    expect(out[0]).toBe(0)
    expect(out[1000]).toBe(1)
    expect(out[500]).toBeCloseTo(0.5, 5)
  })

  // Coarser than the grid, and finer, where several stored rows fall in one row of grid cells.
  it.each([
    { size: [37, 41, 29] as Vec3, zooms: [3.1, 2.2, 4.3] as Vec3 },
    { size: [90, 70, 80] as Vec3, zooms: [1, 0.9, 1.2] as Vec3 },
  ])('maps probabilities back with the same winner as brute-force trilinear interpolation ($zooms mm)', ({ size, zooms }) => {
    const n = MODEL_GRID_SIZE
    const classes = 3
    const cells = n ** 3
    let seed = 7
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    // Smooth blobs of classes so that most voxels are interior and some are boundaries.
    const logits = new Float32Array(classes * cells)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) {
      const v = (i * n + j) * n + k
      logits[v] = Math.sin(i / 9) * 3
      logits[cells + v] = Math.cos(j / 7) * 3
      logits[2 * cells + v] = Math.sin((i + k) / 11) * 3 + random() * 0.01
    }
    const probabilities = softmaxOverClasses(logits, classes)
    const placement = placeGrid([50, 40, 60], zooms)
    const { labels, counts } = labelsFromModelGrid(probabilities, classes, storedCanonically(size, zooms), placement)
    expect(counts.reduce((a, b) => a + b, 0)).toBe(labels.length)
    for (let c = 0; c < classes; c++) expect(counts[c]).toBe(labels.filter((l) => l === c).length)
    for (let trial = 0; trial < 2000; trial++) {
      const [x, y, z] = [Math.floor(random() * size[0]), Math.floor(random() * size[1]), Math.floor(random() * size[2])]
      const g = [x, y, z].map((c, a) => (c * (zooms[a] as number) - (placement.offsetMm[a] as number)) / 2.5)
      if (g.some((c) => c < 0 || c > n - 1)) {
        expect(labels[x + size[0] * (y + size[1] * z)]).toBe(0)
        continue
      }
      const i0 = g.map((c) => Math.min(Math.floor(c), n - 2))
      let best = -1
      let bestP = -1
      for (let c = 0; c < classes; c++) {
        let p = 0
        for (let q = 0; q < 8; q++) {
          const o = [q & 1, (q >> 1) & 1, (q >> 2) & 1]
          const w = o.reduce((acc, bit, a) => acc * (bit ? (g[a] as number) - (i0[a] as number) : 1 - ((g[a] as number) - (i0[a] as number))), 1)
          const idx = (((i0[0] as number) + (o[0] as number)) * n + (i0[1] as number) + (o[1] as number)) * n + (i0[2] as number) + (o[2] as number)
          p += w * (probabilities[c * cells + idx] as number)
        }
        if (p > bestP) {
          bestP = p
          best = c
        }
      }
      expect(labels[x + size[0] * (y + size[1] * z)]).toBe(best)
    }
  })
})

describe('the model grid from any stored layout', () => {
  // The canonical volume stored with its axes permuted and flipped: canonical axis c is stored axis axes[c].
  const size: Vec3 = [70, 90, 40]
  const zooms: Vec3 = [1, 0.8, 2.5]
  const canonical = storedCanonically(size, zooms)
  const axes: [number, number, number] = [2, 0, 1]
  const flipped: [boolean, boolean, boolean] = [true, false, true]
  const storedSize = [0, 1, 2].map((d) => size[axes.indexOf(d)] as number) as Vec3
  const storedZooms = [0, 1, 2].map((d) => zooms[axes.indexOf(d)] as number) as Vec3
  const stored: CanonicalTransform = { axes, flipped, original: { ...storedCanonically(storedSize, storedZooms).original } }
  let seed = 11
  const data = Int16Array.from({ length: size[0] * size[1] * size[2] }, () => ((seed = (seed * 16807) % 2147483647) % 2000) - 300)
  // fromCanonicalVoxels of the stored transform: reorder via its inverse.
  const storedData = new Int16Array(data.length)
  const toStored = toCanonicalVoxels(Int32Array.from({ length: data.length }, (_, i) => i), stored)
  toStored.forEach((storedIndex, canonicalIndex) => (storedData[storedIndex] = data[canonicalIndex] as number))
  const placement = placeGrid([30, 40, 50], zooms)

  it('resamples to the same grid, bit for bit', () => {
    const a = resampleToModelGrid(data, canonical, placement, { slope: 0.5, intercept: 7 })
    const b = resampleToModelGrid(storedData, stored, placement, { slope: 0.5, intercept: 7 })
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true)
    expect(headCentreMm(storedData, stored)).toEqual(headCentreMm(data, canonical))
  })

  it('gives the same labels, in the stored layout', () => {
    const n = MODEL_GRID_SIZE
    const cells = n ** 3
    const logits = new Float32Array(3 * cells)
    for (let v = 0; v < cells; v++) {
      const [i, j, k] = [Math.floor(v / (n * n)), Math.floor(v / n) % n, v % n]
      logits[v] = Math.sin(i / 5)
      logits[cells + v] = Math.cos(j / 4)
      logits[2 * cells + v] = Math.sin((i + k) / 6)
    }
    const probabilities = softmaxOverClasses(logits, 3)
    const a = labelsFromModelGrid(probabilities, 3, canonical, placement)
    const b = labelsFromModelGrid(probabilities, 3, stored, placement)
    expect(b.counts).toEqual(a.counts)
    expect(Buffer.from(toCanonicalVoxels(b.labels, stored)).equals(Buffer.from(a.labels))).toBe(true)
  })
})

/** The canonical (RAS) voxel layout itself: LPS directions of -x, -y, +z. */
function storedCanonically(size: Vec3, spacing: Vec3): CanonicalTransform {
  return { axes: [0, 1, 2], flipped: [false, false, false], original: { size, spacing, origin: [0, 0, 0], direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] } }
}

/** In-place softmax over the class axis of [class][voxel] logits. */
function softmaxOverClasses(logits: Float32Array, classes: number): Float32Array {
  const cells = logits.length / classes
  for (let v = 0; v < cells; v++) {
    let max = -Infinity
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[c * cells + v] as number)
    let sum = 0
    for (let c = 0; c < classes; c++) {
      const e = Math.exp((logits[c * cells + v] as number) - max)
      logits[c * cells + v] = e
      sum += e
    }
    for (let c = 0; c < classes; c++) logits[c * cells + v] = (logits[c * cells + v] as number) / sum
  }
  return logits
}

