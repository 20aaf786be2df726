/**
 * The slice a reviewer checks first: the mid-sagittal plane of the original scan with what was
 * removed in red and the protected brain in green, so that "face gone, brain untouched" can be
 * seen at a glance rather than taken on trust.
 */
import { nonFiniteAsAir, type Vec3, type Volume } from '../io/volume.js'
import { canonicalGeometry, canonicalLayout, canonicalTransformOf } from '../io/canonical-grid.js'
import { weightAt, type RemovalWeight } from '../deface/deface-volume.js'
import { LABELS } from '../segment/segment-head.js'

export interface RgbImage {
  width: number
  height: number
  /** Interleaved RGB, row-major, top row first. */
  data: Uint8Array
  /** Millimetres per pixel along the columns and the rows, for display at the true aspect. */
  pixelMm: [number, number]
}

const REMOVED: [number, number, number] = [255, 40, 40]
const BRAIN: [number, number, number] = [60, 220, 90]
const BRAIN_ALPHA = 0.25

/**
 * Columns run from the patient's front (left of the image) to the back, rows from the top of
 * the head down, as a sagittal slice is usually shown. `weight` is the removal weight
 * (0 untouched, 1 replaced) and `labels` the segmentation, both in the volume's own layout.
 */
export function sagittalOverlay(volume: Volume, weight: RemovalWeight, labels: Uint8Array): RgbImage {
  const transform = canonicalTransformOf(volume)
  const { spacing } = canonicalGeometry(transform)
  // Only one slice is shown, so it is read through the stored layout rather than from a reordered copy.
  const stored = canonicalLayout(transform)
  const [, ny, nz] = stored.size
  const x = midlineColumn(labels, volume.size, transform.axes[0], transform.flipped[0])
  const storedIndex = (y: number, z: number) => stored.base + x * stored.step[0] + y * stored.step[1] + z * stored.step[2]
  const slope = volume.scaling?.slope ?? 1
  const intercept = volume.scaling?.intercept ?? 0
  const values = new Float32Array(ny * nz)
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) values[z * ny + y] = (volume.data[storedIndex(y, z)] as number) * slope + intercept
  const slice = nonFiniteAsAir(values)
  const [lo, hi] = robustRange(slice)
  const data = new Uint8Array(ny * nz * 3)
  for (let row = 0; row < nz; row++) {
    const z = nz - 1 - row
    for (let column = 0; column < ny; column++) {
      const y = ny - 1 - column
      const i = storedIndex(y, z)
      const grey = Math.round(255 * Math.min(1, Math.max(0, ((slice[z * ny + y] as number) - lo) / (hi - lo))))
      let rgb: [number, number, number] = [grey, grey, grey]
      if (labels[i] === LABELS.brain) rgb = blend(rgb, BRAIN, BRAIN_ALPHA)
      const removed = weightAt(weight, i, volume.size)
      if (removed > 0) rgb = blend(rgb, REMOVED, 0.6 * removed)
      data.set(rgb, (row * ny + column) * 3)
    }
  }
  return { width: ny, height: nz, data, pixelMm: [spacing[1], spacing[2]] }
}

/**
 * The canonical left-right index through the centre of the brain, or of the volume when there is
 * none. The stored axis `axis` runs left-right, reversed if `flipped`.
 */
function midlineColumn(labels: Uint8Array, size: Vec3, axis: number, flipped: boolean): number {
  const [nx, ny, nz] = size
  const n = size[axis] as number
  // Index sums along all three axes, so the loop needs no division per voxel.
  const sums = [0, 0, 0]
  let count = 0
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      let rowSum = 0
      let rowCount = 0
      for (let x = 0; x < nx; x++, i++) {
        if (labels[i] !== LABELS.brain) continue
        rowSum += x
        rowCount++
      }
      sums[0] = (sums[0] as number) + rowSum
      sums[1] = (sums[1] as number) + y * rowCount
      sums[2] = (sums[2] as number) + z * rowCount
      count += rowCount
    }
  }
  if (count === 0) return Math.floor(n / 2)
  const sum = sums[axis] as number
  return Math.round((flipped ? count * (n - 1) - sum : sum) / count)
}

function robustRange(values: Float32Array): [number, number] {
  const sorted = Float32Array.from(values).sort()
  const lo = sorted[Math.floor(sorted.length * 0.01)] as number
  const hi = sorted[Math.floor(sorted.length * 0.995)] as number
  return hi > lo ? [lo, hi] : [lo, lo + 1]
}

function blend(base: [number, number, number], colour: [number, number, number], alpha: number): [number, number, number] {
  return [0, 1, 2].map((c) => Math.round((base[c] as number) * (1 - alpha) + (colour[c] as number) * alpha)) as [number, number, number]
}
