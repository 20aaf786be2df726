/** Gathers what every stage produced into the one DefaceReport. */
import type { Volume } from '../io/volume.js'
import type { DefaceOutcome, DefaceSettings } from '../deface/deface-volume.js'
import type { LabelName, SegmentationModel } from '../segment/segment-head.js'
import type { FaceVerification } from '../verify/verify-face-removed.js'
import type { FaceCheckIdentity } from '../verify/face-check-thread.js'
import type { DefaceReport } from './deface-report.js'
import { fileSha256, toolIdentity } from './provenance.js'

export interface ReportParts {
  volume: Volume
  /** Voxels per label of the labels the volume was defaced with. */
  labelCounts: Record<LabelName, number>
  defaced: DefaceOutcome
  settings: DefaceSettings & { verify: boolean }
  verification: FaceVerification | undefined
  models: { segmentation: SegmentationModel; faceCheck?: { ready: Promise<FaceCheckIdentity> } }
  output?: string
  quarantine?: string
  timingsMs: Record<string, number>
  notes: string[]
}

const modelHashes = new Map<string, Promise<string>>()

function cachedSha256(path: string): Promise<string> {
  let hash = modelHashes.get(path)
  if (hash === undefined) {
    hash = fileSha256(path)
    modelHashes.set(path, hash)
  }
  return hash
}

export async function buildReport(parts: ReportParts): Promise<DefaceReport> {
  const { volume, labelCounts, defaced, verification } = parts
  const counts = { face: labelCounts.face, ears: labelCounts.ears, brain: labelCounts.brain }
  const segmentationPath = parts.models.segmentation.path
  return {
    tool: await toolIdentity(),
    models: {
      segmentation: { path: segmentationPath, sha256: await cachedSha256(segmentationPath) },
      ...(parts.models.faceCheck === undefined ? {} : { faceCheck: await parts.models.faceCheck.ready }),
    },
    input: { path: volume.source.path, format: volume.source.format, size: volume.size, spacing: volume.spacing, modality: volume.modality },
    ...(parts.output === undefined ? {} : { output: parts.output }),
    ...(parts.quarantine === undefined ? {} : { quarantine: parts.quarantine }),
    released: parts.output !== undefined,
    verdict: verification?.verdict ?? 'UNVERIFIED',
    reasons: verification?.reasons ?? ['verification was switched off (--no-verify): nothing shows that the face is gone'],
    settings: parts.settings,
    faceFound: defaced.faceFound,
    voxels: { ...counts, changed: defaced.changedVoxels, brainChanged: defaced.brainVoxelsChanged },
    views: verification?.views ?? [],
    ...(verification === undefined ? {} : { faint: verification.faint }),
    timingsMs: parts.timingsMs,
    notes: parts.notes,
  }
}
