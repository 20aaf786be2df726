/** What `unface info` reports about a volume, as data, so the CLI and the library agree. */
import type { HeaderText, Modality, PixelType, Vec3, Volume, VolumeFormat } from './volume.js'
import { obliquityDegrees, orientationCode, OBLIQUE_THRESHOLD_DEGREES } from './orientation.js'
import { realRange } from './volume.js'

export interface VolumeInfo {
  path: string
  format: VolumeFormat
  size: Vec3
  spacing: Vec3
  origin: Vec3
  orientation: string
  oblique: boolean
  obliquityDegrees: number
  pixelType: PixelType
  scaling?: { slope: number; intercept: number }
  modality: Modality
  intensityRange: [number, number]
  headerText: HeaderText[]
  notes: string[]
}

export function volumeInfo(volume: Volume): VolumeInfo {
  const ends = realRange(volume.data, volume.scaling)
  const obliquity = obliquityDegrees(volume.direction)
  return {
    path: volume.source.path,
    format: volume.source.format,
    size: volume.size,
    spacing: volume.spacing,
    origin: volume.origin,
    orientation: orientationCode(volume.direction),
    oblique: obliquity > OBLIQUE_THRESHOLD_DEGREES,
    obliquityDegrees: obliquity,
    pixelType: volume.pixelType,
    ...(volume.scaling === undefined ? {} : { scaling: volume.scaling }),
    modality: volume.modality,
    intensityRange: ends,
    headerText: volume.headerText,
    notes: volume.source.notes,
  }
}
