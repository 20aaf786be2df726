/** Small volumes with chosen geometry, for tests that pin I/O and geometry without real scans. */
import type { Mat3, PixelType, Vec3, Volume } from '../src/io/volume.js'
import { allocateVoxels } from '../src/io/volume.js'

export function rotation(degrees: Vec3): Mat3 {
  const [a, b, c] = degrees.map((d) => (d * Math.PI) / 180) as Vec3
  const rx: Mat3 = [1, 0, 0, 0, Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a)]
  const ry: Mat3 = [Math.cos(b), 0, Math.sin(b), 0, 1, 0, -Math.sin(b), 0, Math.cos(b)]
  const rz: Mat3 = [Math.cos(c), -Math.sin(c), 0, Math.sin(c), Math.cos(c), 0, 0, 0, 1]
  const mul = (p: Mat3, q: Mat3) =>
    p.map((_, i) => {
      const r = Math.floor(i / 3)
      const k = i % 3
      return (p[r * 3] as number) * (q[k] as number) + (p[r * 3 + 1] as number) * (q[3 + k] as number) + (p[r * 3 + 2] as number) * (q[6 + k] as number)
    }) as Mat3
  return mul(rz, mul(ry, rx))
}

/** A volume whose voxel values encode their own index, so any reordering is visible. */
export function indexedVolume(options: {
  size?: Vec3
  spacing?: Vec3
  origin?: Vec3
  direction?: Mat3
  pixelType?: PixelType
}): Volume {
  const size = options.size ?? [7, 5, 4]
  const pixelType = options.pixelType ?? 'int16'
  const data = allocateVoxels(pixelType, size[0] * size[1] * size[2])
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251
  return {
    data,
    pixelType,
    size,
    spacing: options.spacing ?? [1.5, 2, 2.5],
    origin: options.origin ?? [10, -20, 30],
    direction: options.direction ?? [1, 0, 0, 0, 1, 0, 0, 0, 1],
    modality: 'MR',
    headerText: [],
    source: { path: '<synthetic>', format: 'nifti', notes: [] },
  }
}
