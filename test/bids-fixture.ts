/**
 * A small BIDS dataset built from the real 2 mm heads in ../shared/data, for the dataset tests:
 * two sessions of one subject (Subj1 T1w + FLAIR on different grids; an IXI T1w), a subject
 * whose T1w is copied to a T2w on the same grid (for --mask-from), a subject whose T1w is a
 * truncated .nii.gz, JSON sidecars full of fake identifying fields, a functional run that is
 * copied unchanged, and the usual top-level files.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { sharedPath } from './shared-data.js'

/** Identifying fields as dcm2niix writes them, with fake values. */
export const FAKE_IDENTIFIERS = {
  PatientName: 'Doe^Jane',
  PatientID: 'HOSP-0042',
  PatientBirthDate: '19700101',
  PatientSex: 'F',
  PatientAge: '054Y',
  PatientWeight: 61,
  AcquisitionDateTime: '2024-03-05T10:11:12.000000',
  AcquisitionTime: '10:11:12.000000',
  StudyDate: '20240305',
  SeriesDate: '20240305',
  InstitutionName: 'St Elsewhere Hospital',
  InstitutionAddress: '1 Main Street, Springfield',
  ReferringPhysicianName: 'Dr^Who',
  OperatorsName: 'Tech^One',
  DeviceSerialNumber: '45123',
  StationName: 'MRC35123',
  StudyInstanceUID: '1.2.826.0.1.3680043.2.1125.1',
  SeriesInstanceUID: '1.2.826.0.1.3680043.2.1125.2',
}

export const SCAN_FIELDS = { Modality: 'MR', MagneticFieldStrength: 3, Manufacturer: 'Siemens', RepetitionTime: 2.3, EchoTime: 0.00298 }

export interface FixtureImage {
  path: string
  /** Whether the file is readable (the truncated one is not). */
  readable: boolean
}

export const FIXTURE_IMAGES: FixtureImage[] = [
  { path: 'sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz', readable: true },
  { path: 'sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz', readable: true },
  { path: 'sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz', readable: true },
  { path: 'sub-02/anat/sub-02_T1w.nii.gz', readable: true },
  { path: 'sub-02/anat/sub-02_T2w.nii.gz', readable: true },
  { path: 'sub-03/anat/sub-03_T1w.nii.gz', readable: false },
]

/** Files that must come out byte-identical. */
export const FIXTURE_PLAIN_FILES = [
  'README',
  'CHANGES',
  'participants.tsv',
  'participants.json',
  'sub-01/sub-01_sessions.tsv',
  'sub-02/func/sub-02_task-rest_bold.nii.gz',
  'sub-02/sub-02_scans.tsv',
]

async function put(root: string, rel: string, contents: string | Uint8Array): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true })
  await writeFile(join(root, rel), contents)
}

async function copyIn(root: string, rel: string, shared: string): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true })
  await copyFile(sharedPath('heads', shared), join(root, rel))
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

export async function buildBidsFixture(root: string): Promise<void> {
  await put(root, 'dataset_description.json', json({ Name: 'unface test dataset', BIDSVersion: '1.9.0', DatasetType: 'raw', Authors: ['A. Tester'] }))
  await put(root, 'README', 'A test dataset built from IXI and NiChart heads.\n')
  await put(root, 'CHANGES', '1.0.0 2024-01-01\n  - initial\n')
  await put(root, 'participants.tsv', 'participant_id\tage\tsex\nsub-01\t54\tF\nsub-02\t40\tM\nsub-03\t33\tF\n')
  await put(root, 'participants.json', json({ age: { Description: 'age in years' }, sex: { Description: 'sex' } }))
  await put(root, 'T1w.json', json({ ...SCAN_FIELDS, InstitutionName: 'St Elsewhere Hospital' }))
  await put(root, 'sub-01/sub-01_sessions.tsv', 'session_id\nses-1\nses-2\n')

  await copyIn(root, 'sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz', 'Subj1_T1.nii.gz')
  await copyIn(root, 'sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz', 'Subj1_FL.nii.gz')
  await copyIn(root, 'sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz', 'IXI012-HH-1211_T1.nii.gz')
  await copyIn(root, 'sub-02/anat/sub-02_T1w.nii.gz', 'IXI015-HH-1258_T1.nii.gz')
  // The same voxels on the same grid under another contrast's name: --mask-from applies.
  await copyIn(root, 'sub-02/anat/sub-02_T2w.nii.gz', 'IXI015-HH-1258_T1.nii.gz')
  const whole = await readFile(sharedPath('heads', 'IXI132-HH-1415_T1.nii.gz'))
  await put(root, 'sub-03/anat/sub-03_T1w.nii.gz', whole.subarray(0, Math.floor(whole.length / 3)))

  for (const image of FIXTURE_IMAGES) {
    if (image.path.endsWith('_T2w.nii.gz')) continue // no sidecar of its own: one is created
    await put(root, image.path.replace(/\.nii\.gz$/, '.json'), json({ ...SCAN_FIELDS, ...FAKE_IDENTIFIERS }))
  }
  await put(root, 'sub-02/func/sub-02_task-rest_bold.nii.gz', gzipSync(Buffer.from('not really a BOLD series, copied as it is\n')))
  await put(root, 'sub-02/func/sub-02_task-rest_bold.json', json({ TaskName: 'rest', RepetitionTime: 2, ...FAKE_IDENTIFIERS }))
  await put(root, 'sub-02/sub-02_scans.tsv', 'filename\tacq_time\nanat/sub-02_T1w.nii.gz\t2024-03-05T10:11:12\n')
}
