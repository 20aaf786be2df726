/**
 * The one data type every stage works on: voxels plus the geometry that places them in the
 * patient. Geometry follows itk-wasm: physical coordinates are LPS, and `direction` is a
 * row-major 3x3 matrix whose column c is the unit vector of voxel axis c.
 */

export const PIXEL_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'] as const
export type PixelType = (typeof PIXEL_TYPES)[number]

export type VoxelArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array

export type Vec3 = [number, number, number]
/** Row-major 3x3: m[r * 3 + c]. */
export type Mat3 = [number, number, number, number, number, number, number, number, number]

export type Modality = 'CT' | 'MR'

export type VolumeFormat = 'nifti' | 'nrrd' | 'metaimage' | 'dicom'

export interface Geometry {
  /** Voxels along each axis; axis 0 varies fastest in `data`. */
  size: Vec3
  /** Millimetres between voxel centres along each axis. */
  spacing: Vec3
  /** LPS position, in mm, of the centre of voxel (0, 0, 0). */
  origin: Vec3
  direction: Mat3
}

/** What the stored value means: real = stored * slope + intercept (NIfTI scl_slope/scl_inter). */
export interface IntensityScaling {
  slope: number
  intercept: number
}

/** Free-text header fields that may identify a person or a session. */
export interface HeaderText {
  field: string
  value: string
}

export interface VolumeSource {
  path: string
  format: VolumeFormat
  /**
   * The original NIfTI header bytes (348 or 540), kept so a NIfTI written back carries the same
   * qform, sform, codes, units and scaling as the one read.
   */
  niftiHeader?: Uint8Array
  /** DICOM files that made up the series, in slice order. */
  dicomFiles?: string[]
  /** Notes on what reading had to do (gantry tilt, uneven spacing), for reports. */
  notes: string[]
}

export interface Volume extends Geometry {
  data: VoxelArray
  pixelType: PixelType
  scaling?: IntensityScaling
  modality: Modality
  /** Identifying free text found in the header (kept only to report and scrub it). */
  headerText: HeaderText[]
  source: VolumeSource
}

export function voxelCount(size: Vec3): number {
  return size[0] * size[1] * size[2]
}

/**
 * Voxel arrays live in shared memory: the face check reads the original and the defaced volume
 * on a thread of its own, and a volume in an ordinary buffer would be copied to get there, twice
 * per scan (on a 256^3 scan about 0.4 s each on this machine). No stage writes to a volume it
 * was given, so sharing is safe.
 */
export function allocateVoxels(pixelType: PixelType, length: number): VoxelArray {
  const shared = (bytesPerVoxel: number) => new SharedArrayBuffer(length * bytesPerVoxel)
  switch (pixelType) {
    case 'uint8':
      return new Uint8Array(shared(1))
    case 'int8':
      return new Int8Array(shared(1))
    case 'uint16':
      return new Uint16Array(shared(2))
    case 'int16':
      return new Int16Array(shared(2))
    case 'uint32':
      return new Uint32Array(shared(4))
    case 'int32':
      return new Int32Array(shared(4))
    case 'float32':
      return new Float32Array(shared(4))
    case 'float64':
      return new Float64Array(shared(8))
  }
}

export function pixelTypeOf(data: VoxelArray): PixelType {
  if (data instanceof Uint8Array) return 'uint8'
  if (data instanceof Int8Array) return 'int8'
  if (data instanceof Uint16Array) return 'uint16'
  if (data instanceof Int16Array) return 'int16'
  if (data instanceof Uint32Array) return 'uint32'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Float32Array) return 'float32'
  return 'float64'
}

/** Real-world intensities (scaling applied) as float32, which is what the model and renderer read. */
export function realIntensities(volume: Volume): Float32Array {
  // The typed-array constructor converts natively; the scaling loop then runs on one array type.
  const out = new Float32Array(volume.data)
  const slope = volume.scaling?.slope ?? 1
  const intercept = volume.scaling?.intercept ?? 0
  if (slope !== 1 || intercept !== 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) * slope + intercept
  return out
}

/** The geometry alone, for stages that must keep it unchanged. */
export function geometryOf(volume: Geometry): Geometry {
  return {
    size: [...volume.size],
    spacing: [...volume.spacing],
    origin: [...volume.origin],
    direction: [...volume.direction],
  }
}

/**
 * The volume as the analysing stages (segmentation, rendering) should see it: voxels that cannot
 * be tissue read as air. A NaN background once reached the network and the renderer as NaN,
 * neither found the face, and the scan went out with its face as "NO-FACE"; a CT's padding far
 * below air hid the face from both too (see ctPaddingAsAir). Volumes with neither come back as
 * they are.
 */
export function forAnalysis(volume: Volume): Volume {
  return ctPaddingAsAir(finiteVoxels(volume))
}

/** NaN and infinite voxels, which float scans sometimes hold outside the head or the field of view, as air (see nonFiniteAsAir). */
function finiteVoxels(volume: Volume): Volume {
  const { data } = volume
  if (!(data instanceof Float32Array || data instanceof Float64Array)) return volume
  const finite = nonFiniteAsAir(data)
  return finite === data ? volume : withVoxels(volume, finite)
}

/** The lowest and highest real intensity (stored * slope + intercept), lowest first. */
export function realRange(data: VoxelArray, scaling?: IntensityScaling): [number, number] {
  let min = Infinity
  let max = -Infinity
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number
    if (v < min) min = v
    if (v > max) max = v
  }
  const slope = scaling?.slope ?? 1
  const intercept = scaling?.intercept ?? 0
  const ends = [min * slope + intercept, max * slope + intercept]
  return slope < 0 ? [ends[1] as number, ends[0] as number] : [ends[0] as number, ends[1] as number]
}

/** Nothing in a patient is below air; CT stores the padding outside its reconstruction circle far below it (-2048, -3024 HU). */
export const CT_AIR_FLOOR_HU = -1024

/**
 * A CT's voxels below CT_AIR_FLOOR_HU, which can only be padding, as air. Padding 2000 HU below the air made the network see the air as grey (its
 * normalisation stretches from the lowest value), and when it filled more than a quarter of the
 * scan the renderer drew the air as skin; a face was left in place. Other volumes, and CTs without
 * such voxels, come back as they are.
 */
function ctPaddingAsAir(volume: Volume): Volume {
  if (volume.modality !== 'CT') return volume
  const { slope, intercept } = volume.scaling ?? { slope: 1, intercept: 0 }
  if (!(slope > 0)) return volume
  const exact = (CT_AIR_FLOOR_HU - intercept) / slope
  const floor = volume.data instanceof Float32Array || volume.data instanceof Float64Array ? exact : Math.ceil(exact)
  const { data } = volume
  let i = 0
  while (i < data.length && (data[i] as number) >= floor) i++
  if (i === data.length) return volume
  const lifted = data.slice()
  for (; i < lifted.length; i++) if ((lifted[i] as number) < floor) lifted[i] = floor
  return withVoxels(volume, lifted)
}

/** The values with NaN and infinities replaced by the lowest finite value (0 if none): the array itself when it has none. */
export function nonFiniteAsAir<T extends Float32Array | Float64Array>(values: T): T {
  let lowest = Infinity
  let nonFinite = false
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    // v - v is 0 for every finite value and NaN for NaN and both infinities.
    if (v - v !== 0) nonFinite = true
    else if (v < lowest) lowest = v
  }
  if (!nonFinite) return values
  const air = lowest === Infinity ? 0 : lowest
  const finite = values.slice() as T
  for (let i = 0; i < finite.length; i++) if ((finite[i] as number) - (finite[i] as number) !== 0) finite[i] = air
  return finite
}

/** A copy of the volume with other voxels; everything else, geometry included, is kept. */
export function withVoxels(volume: Volume, data: VoxelArray): Volume {
  if (data.length !== volume.data.length) {
    throw new Error(`voxel count changed: ${volume.data.length} -> ${data.length}`)
  }
  return { ...volume, data, pixelType: pixelTypeOf(data) }
}
