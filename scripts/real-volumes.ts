/** The real scans in ../shared/data that the evaluation and calibration scripts go through. */
import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const SHARED_DATA = resolve(import.meta.dirname, '..', '..', 'shared', 'data')

/** Every head with a face (../shared/data/heads), then both DICOM series. */
export function realHeads(data: string = SHARED_DATA): string[] {
  return [
    ...readdirSync(join(data, 'heads'))
      .filter((n) => /\.nii(\.gz)?$/.test(n))
      .sort()
      .map((n) => join(data, 'heads', n)),
    join(data, 'dicom', 'philips_adni_mprage'),
    join(data, 'dicom', 'slicer_ctheadaxial_quarter'),
  ]
}

export function skullStrippedControl(data: string = SHARED_DATA): string {
  return join(data, 'controls', 'MR_Gd_skullstripped.nii.gz')
}
