/** Which file format a path means, by its extension. */
import type { VolumeFormat } from './volume.js'

export interface FileFormat {
  format: Exclude<VolumeFormat, 'dicom'>
  extension: string
  /** Header and voxels in two files (.nhdr, .mhd). */
  detached: boolean
}

const FORMATS: readonly FileFormat[] = [
  { extension: '.nii.gz', format: 'nifti', detached: false },
  { extension: '.nii', format: 'nifti', detached: false },
  { extension: '.nrrd', format: 'nrrd', detached: false },
  { extension: '.nhdr', format: 'nrrd', detached: true },
  { extension: '.mha', format: 'metaimage', detached: false },
  { extension: '.mhd', format: 'metaimage', detached: true },
]

export const SUPPORTED_EXTENSIONS = FORMATS.map((f) => f.extension)

export function formatOfPath(path: string): FileFormat | undefined {
  const lower = path.toLowerCase()
  return FORMATS.find((f) => lower.endsWith(f.extension))
}

/** The path without its volume extension, for naming derived files. */
export function stripVolumeExtension(path: string): string {
  const format = formatOfPath(path)
  return format === undefined ? path.replace(/\/+$/, '') : path.slice(0, path.length - format.extension.length)
}
