/**
 * Separable Gaussian smoothing of a 3D float volume, matching scipy.ndimage.gaussian_filter
 * (mode 'reflect', truncate 4) so that inference sees the same anti-aliasing as training.
 */
import type { Vec3 } from '../io/volume.js'

export function gaussianBlur3d(data: Float32Array, size: Vec3, sigma: Vec3): Float32Array {
  let current = data
  for (let axis = 0; axis < 3; axis++) {
    const s = sigma[axis] as number
    if (s <= 0.05) continue
    current = blurAxis(current, size, axis, s)
  }
  return current === data ? data.slice() : current
}

export function gaussianKernel(sigma: number): Float32Array {
  const radius = Math.floor(4 * sigma + 0.5)
  const weights = new Float32Array(2 * radius + 1)
  let sum = 0
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp((-0.5 * i * i) / (sigma * sigma))
    weights[i + radius] = w
    sum += w
  }
  for (let i = 0; i < weights.length; i++) weights[i] = (weights[i] as number) / sum
  return weights
}

/** scipy's 'reflect': (d c b a | a b c d | d c b a). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0
  const period = 2 * n
  let j = ((i % period) + period) % period
  if (j >= n) j = period - 1 - j
  return j
}

function blurAxis(data: Float32Array, size: Vec3, axis: number, sigma: number): Float32Array {
  const weights = gaussianKernel(sigma)
  const radius = (weights.length - 1) / 2
  const n = size[axis] as number
  // Voxels along `axis` are `inner` apart; blocks of n*inner voxels repeat `outer` times.
  const inner = axis === 0 ? 1 : axis === 1 ? size[0] : size[0] * size[1]
  const outer = data.length / (n * inner)
  const out = new Float32Array(data.length)
  if (inner === 1) {
    const line = new Float32Array(n + 2 * radius)
    for (let o = 0; o < outer; o++) {
      const base = o * n
      for (let i = -radius; i < n + radius; i++) line[i + radius] = data[base + reflectIndex(i, n)] as number
      for (let i = 0; i < n; i++) {
        let sum = 0
        for (let k = 0; k < weights.length; k++) sum += (weights[k] as number) * (line[i + k] as number)
        out[base + i] = sum
      }
    }
    return out
  }
  // Along y and z, whole contiguous rows are weighted and added, which keeps memory access linear.
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner
    for (let i = 0; i < n; i++) {
      const target = base + i * inner
      for (let k = 0; k < weights.length; k++) {
        const w = weights[k] as number
        const source = base + reflectIndex(i + k - radius, n) * inner
        for (let t = 0; t < inner; t++) out[target + t] = (out[target + t] as number) + w * (data[source + t] as number)
      }
    }
  }
  return out
}
