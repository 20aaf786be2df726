/**
 * JSON sidecars: the identifying fields that dcm2niix and other converters copy out of the DICOM
 * header are removed, and the sidecar of a defaced image says how it was defaced. The field list
 * is the one documented in docs/dataset.md; keep the two in step.
 */

/**
 * Keys removed from every JSON sidecar, at any depth, compared without regard to case. They are
 * DICOM keywords (as dcm2niix names them) that identify the person, the visit, the site or the
 * scanner, or that link the file back to the hospital's archive. Sex and age are removed too:
 * in BIDS they belong in participants.tsv, where the data custodian decides about them.
 */
export const IDENTIFYING_FIELDS: readonly string[] = [
  // the person
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientBirthTime',
  'PatientSex',
  'PatientAge',
  'PatientWeight',
  'PatientSize',
  'PatientAddress',
  'PatientTelephoneNumbers',
  'PatientMotherBirthName',
  'PatientComments',
  'OtherPatientIDs',
  'OtherPatientNames',
  'MedicalRecordLocator',
  'EthnicGroup',
  'MilitaryRank',
  'ImageComments',
  // the visit
  'AcquisitionDateTime',
  'AcquisitionDate',
  'AcquisitionTime',
  'StudyDate',
  'StudyTime',
  'SeriesDate',
  'SeriesTime',
  'ContentDate',
  'ContentTime',
  'InstanceCreationDate',
  'InstanceCreationTime',
  'PerformedProcedureStepStartDate',
  'PerformedProcedureStepStartTime',
  'AccessionNumber',
  'StudyID',
  // the people and the site
  'InstitutionName',
  'InstitutionAddress',
  'InstitutionalDepartmentName',
  'ReferringPhysicianName',
  'PerformingPhysicianName',
  'PhysiciansOfRecord',
  'NameOfPhysiciansReadingStudy',
  'RequestingPhysician',
  'OperatorsName',
  'StationName',
  'DeviceSerialNumber',
  // links back to the archive
  'StudyInstanceUID',
  'SeriesInstanceUID',
  'SOPInstanceUID',
  'FrameOfReferenceUID',
  'ReferencedSOPInstanceUID',
  'IrradiationEventUID',
]

const IDENTIFYING = new Set(IDENTIFYING_FIELDS.map((f) => f.toLowerCase()))

/** The field of a defaced image's sidecar that says how it was defaced. */
export const PROVENANCE_FIELD = 'UnfaceDefacing'

export interface DefacingProvenance {
  Tool: 'unface'
  Version: string
  CodeSha256: string
  SegmentationModelSha256: string
  Mode: string
  Ears: boolean
  BrainMarginMm: number
  Verified: boolean
  Verdict: string
  /** "self", or the dataset-relative path of the image whose mask was applied (--mask-from). */
  MaskSource: string
}

export interface ScrubResult {
  /** The JSON as written: scrubbed, with provenance when given. */
  text: string
  /** Keys removed, sorted, without their values. */
  removed: string[]
  /** True when the text differs from the input (otherwise the input is copied byte for byte). */
  changed: boolean
}

/** Parses a sidecar; throws a plain Error with the JSON parser's message when it cannot. */
export function scrubSidecar(original: string, provenance?: DefacingProvenance): ScrubResult {
  const parsed = JSON.parse(original) as unknown
  const removed = new Set<string>()
  const scrubbed = scrub(parsed, removed)
  if (provenance !== undefined) {
    if (!isObject(scrubbed)) throw new Error('the sidecar is not a JSON object')
    scrubbed[PROVENANCE_FIELD] = provenance
  }
  const changed = removed.size > 0 || provenance !== undefined
  return { text: changed ? `${JSON.stringify(scrubbed, null, 2)}\n` : original, removed: [...removed].sort(), changed }
}

/** The identifying keys a JSON document holds, for tests and checks. */
export function identifyingKeys(document: unknown): string[] {
  const found = new Set<string>()
  scrub(document, found)
  return [...found].sort()
}

function scrub(value: unknown, removed: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => scrub(v, removed))
  if (!isObject(value)) return value
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) {
    if (IDENTIFYING.has(key.toLowerCase())) {
      removed.add(key)
      continue
    }
    out[key] = scrub(v, removed)
  }
  return out
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** BIDS GeneratedBy entry for dataset_description.json. */
export function withGeneratedBy(original: string, entry: { Name: string; Version: string; Description: string; CodeURL?: string }): string {
  const parsed = JSON.parse(original) as unknown
  if (!isObject(parsed)) throw new Error('dataset_description.json is not a JSON object')
  const existing = Array.isArray(parsed.GeneratedBy) ? (parsed.GeneratedBy as unknown[]) : []
  parsed.GeneratedBy = [...existing, entry]
  return `${JSON.stringify(parsed, null, 2)}\n`
}
