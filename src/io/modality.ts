/**
 * CT or MR decides the background value (air is -1000 HU on CT, 0 on MR) and the model's
 * normalisation, so it is guessed for every volume: from the DICOM Modality tag when there is
 * one, otherwise from whether the intensities look like Hounsfield units.
 */
import type { IntensityScaling, Modality, VoxelArray } from './volume.js'

const SAMPLES = 200_000

export function guessModality(data: VoxelArray, scaling: IntensityScaling | undefined, modalityTag?: string): Modality {
  if (modalityTag !== undefined && modalityTag.trim() !== '') return modalityTag.trim().toUpperCase() === 'CT' ? 'CT' : 'MR'
  const slope = scaling?.slope ?? 1
  const intercept = scaling?.intercept ?? 0
  const step = Math.max(1, Math.floor(data.length / SAMPLES))
  let total = 0
  let air = 0
  let bone = 0
  for (let i = 0; i < data.length; i += step) {
    const value = (data[i] as number) * slope + intercept
    total++
    if (value >= -1100 && value <= -900) air++
    else if (value >= 300) bone++
  }
  // A head CT is mostly air around the head at about -1000 HU, with bone several hundred HU up.
  return air / total > 0.05 && bone > 0 ? 'CT' : 'MR'
}
