/**
 * The record of one defacing: what went in, what was done, what the verification saw and why it
 * decided as it did. It is what `--json` prints, what `--report` writes, and what a dataset
 * manifest is made from, so every figure a privacy reviewer needs is here and nowhere else.
 */
import type { DefaceMode } from '../deface/deface-volume.js'
import type { VolumeFormat, Modality, Vec3 } from '../io/volume.js'
import type { FaceViewCheck, FaintViewCheck } from '../verify/verify-face-removed.js'
import type { ToolIdentity } from './provenance.js'

/**
 * PASS: the face was checked and is gone. FAIL: a face, or the person, could still be found; or
 * the check could not be made. NO-FACE: no face was found on the original either.
 * UNVERIFIED: the check was switched off (--no-verify).
 */
export type Verdict = 'PASS' | 'FAIL' | 'NO-FACE' | 'UNVERIFIED'

export interface DefaceReport {
  tool: ToolIdentity
  models: { segmentation: { path: string; sha256: string }; faceCheck?: { name: string; sha256: string } }
  input: { path: string; format: VolumeFormat; size: Vec3; spacing: Vec3; modality: Modality }
  /** Where the defaced volume went; undefined when nothing was released. */
  output?: string
  /** Where a failed volume was kept (--keep-failed). */
  quarantine?: string
  released: boolean
  verdict: Verdict
  /** Why the verdict is what it is, one sentence each. */
  reasons: string[]
  settings: { mode: DefaceMode; brainMarginMm: number; ears: boolean; verify: boolean }
  faceFound: boolean
  voxels: { face: number; ears: number; brain: number; changed: number; brainChanged: number }
  /** Per view: detector scores and descriptor distances (src/verify/verify-face-removed.ts). */
  views: FaceViewCheck[]
  /** The released volume rendered again at the faint skin level (absent with --no-verify). */
  faint?: { threshold: number; views: FaintViewCheck[] }
  timingsMs: Record<string, number>
  notes: string[]
}
