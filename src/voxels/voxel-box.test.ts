import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../io/volume.js'
import { boxAround, crop, grow, paste, within } from './voxel-box.js'

const size: Vec3 = [7, 5, 4]
const index = ([x, y, z]: Vec3) => x + size[0] * (y + size[1] * z)

function labelled(points: Array<[Vec3, number]>): Uint8Array {
  const labels = new Uint8Array(size[0] * size[1] * size[2])
  for (const [p, label] of points) labels[index(p)] = label
  return labels
}

describe('boxes of voxels', () => {
  it('boxAround is the smallest box around the voxels that pass, at the ends of rows too', () => {
    const labels = labelled([[[0, 1, 1], 2], [[6, 3, 2], 2], [[3, 2, 3], 5], [[6, 0, 0], 7]])
    expect(boxAround(labels, size, (l) => l === 2)).toEqual({ start: [0, 1, 1], size: [7, 3, 2] })
    expect(boxAround(labels, size, (l) => l === 5)).toEqual({ start: [3, 2, 3], size: [1, 1, 1] })
    expect(boxAround(labels, size, (l) => l >= 5)).toEqual({ start: [3, 0, 0], size: [4, 3, 4] })
    expect(boxAround(labels, size, (l) => l === 9)).toBeUndefined()
  })

  it('grow stays inside the volume; crop and paste move the same voxels out and back', () => {
    const box = grow({ start: [1, 0, 2], size: [2, 2, 1] }, size, [2, 1, 5])
    expect(box).toEqual({ start: [0, 0, 0], size: [5, 3, 4] })
    const values = Float32Array.from({ length: size[0] * size[1] * size[2] }, (_, i) => i)
    const part = crop(values, size, box, new Float32Array(5 * 3 * 4))
    expect(part[0]).toBe(0)
    expect(part[part.length - 1]).toBe(index([4, 2, 3]))
    const back = new Float32Array(values.length).fill(-1)
    paste(part, box, back, size)
    for (let i = 0; i < values.length; i++) {
      const [x, y] = [i % size[0], Math.floor(i / size[0]) % size[1]]
      expect(back[i]).toBe(x < 5 && y < 3 ? i : -1)
    }
    expect(within({ start: [2, 1, 1], size: [1, 1, 1] }, box)).toEqual({ start: [2, 1, 1], size: [1, 1, 1] })
  })
})
