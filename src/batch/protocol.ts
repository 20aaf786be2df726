/** Messages between the dataset run (parent) and its worker processes. */
import type { Layout, WorkUnit } from './discover.js'
import type { ManifestRow, RowSettings } from './manifest.js'

/** What every job of a run shares; sent once to each worker. */
export interface RunContext {
  inRoot: string
  outRoot: string
  layout: Layout
  settings: RowSettings
  maxVoxels?: number
  /** Cores each worker's segmentation network may use: the machine's, shared among the workers. */
  threadsPerWorker: number
}

export interface UnitJob {
  id: number
  unit: WorkUnit
  /** The images of the unit to deface now; the others are done already. */
  todo: string[]
  /**
   * When the --mask-from reference is done already and others are not: whether it was released,
   * so that its mask (recomputed, not re-defaced) may be used for them.
   */
  referenceReleased?: boolean
}

export type ToWorker = { type: 'context'; context: RunContext } | { type: 'job'; job: UnitJob } | { type: 'stop' }

export interface ModelIdentity {
  segmentationSha256: string
  faceCheckSha256: string | null
}

export type FromWorker =
  | { type: 'ready'; models: ModelIdentity }
  | { type: 'fatal'; error: string }
  | { type: 'start'; id: number; input: string }
  | { type: 'row'; id: number; row: ManifestRow }
  | { type: 'done'; id: number }
