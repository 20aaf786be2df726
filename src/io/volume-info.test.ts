import { basename } from 'node:path'
import { expect, it } from 'vitest'
import { readImageNode } from '@itk-wasm/image-io'
import { inspectFile } from '../pipeline.js'
import { orientationCode } from './orientation.js'
import type { Mat3 } from './volume.js'
import { describeWithSharedData, sharedFiles, sharedPath } from '../../test/shared-data.js'

describeWithSharedData('unface info on every real volume agrees with the headers', () => {
  const files = [...sharedFiles('heads'), ...sharedFiles('controls')]
  it('covers all heads and the control', () => expect(files.length).toBeGreaterThanOrEqual(20))
  for (const path of files) {
    it(basename(path), async () => {
      const info = await inspectFile(path)
      // itk-wasm reads the header independently of our NIfTI parser.
      const header = await readImageNode(path, { informationOnly: true })
      expect(info.size).toEqual(header.size)
      info.spacing.forEach((s, i) => expect(s).toBeCloseTo(header.spacing[i] as number, 5))
      expect(info.orientation).toBe(orientationCode(Array.from(header.direction as unknown as ArrayLike<number>) as Mat3))
      expect(info.modality).toBe('MR')
      expect(info.intensityRange[1]).toBeGreaterThan(info.intensityRange[0])
    })
  }
  it('the IXI heads are stored sagittally (PSR), as the data README says', async () => {
    expect((await inspectFile(files.find((f) => basename(f).startsWith('IXI')) as string)).orientation).toBe('PSR')
  })
  it('reports identifying header text: T1w2mm carries an acquisition time in descrip', async () => {
    const info = await inspectFile(files.find((f) => basename(f) === 'T1w2mm.nii.gz') as string)
    expect(info.headerText).toContainEqual({ field: 'descrip', value: 'TE=2.4;Time=120517.042' })
  })
})

describeWithSharedData('unface info on both DICOM series', () => {
  it('Philips MPRAGE: sagittal 1 mm, MR, with the identifying header fields reported', async () => {
    const info = await inspectFile(sharedPath('dicom', 'philips_adni_mprage'))
    expect(info.format).toBe('dicom')
    expect(info.size[2]).toBe(170)
    info.spacing.forEach((s) => expect(s).toBeCloseTo(1, 3))
    expect(info.orientation[2] === 'L' || info.orientation[2] === 'R').toBe(true)
    expect(info.modality).toBe('MR')
    expect(info.headerText.map((t) => t.field)).toEqual(expect.arrayContaining(['PatientName', 'PatientBirthDate']))
  })
  it('Slicer head CT: 64x64x93 axial at 3.2x3.2x1.5 mm, CT', async () => {
    const info = await inspectFile(sharedPath('dicom', 'slicer_ctheadaxial_quarter'))
    expect(info.size).toEqual([64, 64, 93])
    expect(info.spacing[0]).toBeCloseTo(3.2, 3)
    expect(info.spacing[1]).toBeCloseTo(3.2, 3)
    expect(info.spacing[2]).toBeCloseTo(1.5, 3)
    expect(info.orientation[2] === 'S' || info.orientation[2] === 'I').toBe(true)
    expect(info.modality).toBe('CT')
  })
})
