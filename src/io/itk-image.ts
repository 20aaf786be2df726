/**
 * The bridge between itk-wasm's Image and our Volume. Both use LPS and a row-major direction,
 * so geometry passes through unchanged.
 */
import type { Image } from 'itk-wasm'
import type { HeaderText, Mat3, PixelType, Vec3, Volume, VolumeSource, VoxelArray } from './volume.js'
import { PIXEL_TYPES } from './volume.js'
import { UnfaceError } from './errors.js'
import { guessModality } from './modality.js'

/** Metadata keys that restate geometry or encoding rather than carry free text. */
const STRUCTURAL_METADATA = /^(ITK_|NRRD_(space|kinds|centerings|thicknesses|measurement)|dim|pixdim|space|sizes|spacings|kinds|endian|encoding|type|ElementType|DimSize|ElementSpacing|Offset|TransformMatrix|CenterOfRotation|AnatomicalOrientation|ObjectType|NDims|BinaryData|CompressedData)/

/** Checks the image is a 3D scalar volume before any voxel is touched. */
export function assertScalarVolume(image: Pick<Image, 'imageType' | 'size'>, file: string): void {
  const { dimension, components, componentType } = image.imageType
  const size = image.size
  if (dimension < 3 || (dimension === 3 && (size[2] ?? 1) === 1)) {
    throw new UnfaceError(`is a 2D image (${size.slice(0, 2).join('x')}); unface needs a 3D head volume`, { file })
  }
  if (dimension > 3) {
    const frames = size.slice(3).reduce((a, b) => a * b, 1)
    if (frames > 1) {
      throw new UnfaceError(
        `is a ${dimension}D series (${size.slice(0, 3).join('x')} with ${frames} frames); unface defaces 3D volumes only: split the frames first`,
        { file },
      )
    }
  }
  if (components !== 1) {
    throw new UnfaceError(`has ${components} components per voxel (colour or vector image); unface needs a scalar volume`, { file })
  }
  if (!(PIXEL_TYPES as readonly string[]).includes(componentType)) {
    throw new UnfaceError(`has unsupported pixel type ${componentType}`, { file })
  }
}

export function imageToVolume(image: Image, source: VolumeSource, modalityTag?: string): Volume {
  assertScalarVolume(image, source.path)
  if (image.data === null) throw new UnfaceError('image has no voxel data', { file: source.path })
  const pixelType = image.imageType.componentType as PixelType
  const data = image.data as VoxelArray
  const count = (image.size[0] ?? 0) * (image.size[1] ?? 0) * (image.size[2] ?? 0)
  return {
    data: data.length === count ? data : (data.subarray(0, count) as VoxelArray),
    pixelType,
    size: image.size.slice(0, 3) as Vec3,
    spacing: image.spacing.slice(0, 3) as Vec3,
    origin: image.origin.slice(0, 3) as Vec3,
    direction: directionOf(image),
    modality: guessModality(data, undefined, modalityTag),
    headerText: freeTextMetadata(image.metadata),
    source,
  }
}

/** An itk-wasm image of the volume; metadata travels only when asked to keep header text. */
export async function volumeToImage(volume: Volume, metadata: Map<string, unknown>): Promise<Image> {
  const { Image, ImageType } = await import('itk-wasm')
  const image = new Image(new ImageType(3, volume.pixelType, 'Scalar', 1))
  image.name = 'unface'
  image.size = [...volume.size]
  image.spacing = [...volume.spacing]
  image.origin = [...volume.origin]
  image.direction = Float64Array.from(volume.direction)
  image.data = volume.data
  image.metadata = metadata as Image['metadata']
  return image
}

export function freeTextMetadata(metadata: Image['metadata'] | undefined): HeaderText[] {
  if (metadata === undefined) return []
  const found: HeaderText[] = []
  for (const [key, value] of metadata) {
    if (STRUCTURAL_METADATA.test(key)) continue
    const text = typeof value === 'string' ? value.trim() : JSON.stringify(value)
    if (text !== '' && text !== '""') found.push({ field: key, value: text })
  }
  return found
}

/**
 * itk-wasm 3D images carry a 9-element direction; for a 4D image read as its first frame we keep
 * the spatial 3x3 block.
 */
function directionOf(image: Image): Mat3 {
  const n = image.imageType.dimension
  const d = image.direction
  const m: number[] = []
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) m.push(Number(d[r * n + c]))
  return m as Mat3
}
