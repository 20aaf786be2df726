import { describe, expect, it } from 'vitest'
import type { Vec3 } from '../io/volume.js'
import { distanceToMaskMm } from './distance-transform.js'

describe('distance to a mask', () => {
  it('is the exact Euclidean distance in mm on anisotropic grids', () => {
    const size: Vec3 = [9, 7, 5]
    const spacing: Vec3 = [1, 2, 3.5]
    const mask = new Uint8Array(9 * 7 * 5)
    const seeds: Vec3[] = [[1, 1, 1], [7, 5, 3]]
    for (const [x, y, z] of seeds) mask[x + 9 * (y + 7 * z)] = 1
    const d = distanceToMaskMm(mask, size, spacing)
    for (let i = 0; i < mask.length; i++) {
      const p = [i % 9, Math.floor(i / 9) % 7, Math.floor(i / 63)]
      const expected = Math.min(...seeds.map((s) => Math.hypot(...s.map((c, a) => (c - (p[a] as number)) * (spacing[a] as number)))))
      expect(d[i]).toBeCloseTo(expected, 4)
    }
  })
})

describe('distance to a mask, within a reach', () => {
  it('is exact up to the reach and Infinity beyond it, whatever part of the volume the mask fills', () => {
    const size: Vec3 = [40, 30, 20]
    const spacing: Vec3 = [1, 1.5, 2]
    const mask = new Uint8Array(40 * 30 * 20)
    for (const [x, y, z] of [[30, 20, 12], [33, 22, 14], [5, 3, 2]] as Vec3[]) mask[x + 40 * (y + 30 * z)] = 1
    const exact = distanceToMaskMm(mask, size, spacing)
    for (const reach of [4, 9]) {
      const capped = distanceToMaskMm(mask, size, spacing, reach)
      capped.forEach((d, i) => expect(d).toBe((exact[i] as number) <= reach ? (exact[i] as number) : Infinity))
    }
    expect(distanceToMaskMm(new Uint8Array(mask.length), size, spacing, 5).every((d) => d === Infinity)).toBe(true)
  })
})
