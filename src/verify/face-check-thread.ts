/**
 * The face check on a thread of its own. The renders and detections of the original need only
 * the original, so they run while the main thread segments and defaces: on two cores the check
 * then costs little more than its second half. In that half the calling thread, idle until the
 * verdict, renders the defaced volume and hands over each view as it is done, and the check's
 * thread runs the detector on it while the next is rendered. A thread that dies or fails makes
 * every pending check fail, and a failed check never releases anything.
 */
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import type { Volume } from '../io/volume.js'
import type { RenderedView } from './render-surface.js'
import { renderReleased, type CheckLevels, type FaceVerification } from './verify-face-removed.js'

export type ToFaceCheckThread =
  | { type: 'original'; id: number; volume: Volume }
  /** One render of the volume to be released (renderReleased's look and view). */
  | { type: 'view'; id: number; look: number; view: RenderedView }
  /** The last render has been sent: the verdict, please. */
  | { type: 'rendered'; id: number; renderMs: number }
  /** The volume was left unchanged: the verdict on the original itself. */
  | { type: 'unchanged'; id: number }
  | { type: 'forget'; id: number }

export type FromFaceCheckThread =
  | { type: 'ready'; identity: FaceCheckIdentity }
  | { type: 'failed'; error: string }
  /** The original's levels, which the defaced volume is rendered at. */
  | { type: 'levels'; id: number; levels: CheckLevels }
  | { type: 'verified'; id: number; verification: FaceVerification }
  | { type: 'error'; id: number; error: string }

export interface FaceCheckIdentity {
  name: string
  sha256: string
}

/** A check under way: the original has been handed over. */
export interface PendingCheck {
  id: number
  /** The original's skin levels, as soon as the thread has read them off. */
  levels: Promise<CheckLevels>
}

export interface FaceCheckThread {
  /**
   * Resolves once the thread has loaded its networks; rejects if it cannot. Checks may be handed
   * over before: they wait in the thread's queue, so loading overlaps the caller's other work.
   */
  ready: Promise<FaceCheckIdentity>
  /** Hands the original over; rendering and detection start at once. */
  observe(original: Volume): PendingCheck
  /**
   * The verdict on the defaced volume, or on the original left unchanged when `defaced` is the
   * original. The defaced volume is rendered on the calling thread (it would wait for the verdict
   * anyway), and each view is handed over as soon as it is done.
   */
  verify(pending: PendingCheck, original: Volume, defaced: Volume): Promise<FaceVerification>
  /** Drops a check that will not be asked for (the defacing failed). */
  forget(pending: PendingCheck): void
  close(): Promise<void>
}

const HERE = fileURLToPath(import.meta.url)
const FROM_SOURCE = HERE.endsWith('.ts')

export function startFaceCheckThread(): FaceCheckThread {
  const entry = new URL(FROM_SOURCE ? './face-check-worker.ts' : './face-check-worker.js', import.meta.url)
  // From source (the tests), the worker needs tsx to load TypeScript; the built package runs plain JavaScript.
  // A thread inherits the process's flags, and `node --input-type=module -e` would make it refuse
  // its own entry file; that flag concerns the parent's script only, so then the thread is given
  // the others. Otherwise it inherits them as they are: a list given explicitly may not hold V8
  // options, and `node --max-old-space-size=8192 unface ...` stopped with an internal error.
  const options = process.execArgv.some((flag) => flag.startsWith('--input-type'))
    ? { execArgv: process.execArgv.filter((flag) => !flag.startsWith('--input-type')) }
    : {}
  const worker = FROM_SOURCE
    ? new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}) })`, { eval: true, ...options })
    : new Worker(entry, options)
  const waiting = new Map<number, { resolve: (v: FaceVerification) => void; reject: (e: Error) => void }>()
  const levelsWaiting = new Map<number, { resolve: (v: CheckLevels) => void; reject: (e: Error) => void }>()
  let broken: Error | undefined
  // The thread must not keep a finished process alive, only one that awaits its loading or a verdict.
  let loading = true
  const keepAlive = () => (loading || waiting.size > 0 ? worker.ref() : worker.unref())
  const fail = (error: Error) => {
    loading = false
    broken ??= error
    for (const { reject } of [...waiting.values(), ...levelsWaiting.values()]) reject(broken)
    waiting.clear()
    levelsWaiting.clear()
    keepAlive()
  }
  const ready = new Promise<FaceCheckIdentity>((resolve, reject) => {
    worker.on('message', (message: FromFaceCheckThread) => {
      if (message.type === 'ready') {
        loading = false
        keepAlive()
        resolve(message.identity)
      }
      else if (message.type === 'failed') {
        const error = new Error(`the face check could not be loaded: ${message.error}`)
        reject(error)
        fail(error)
      } else if (message.type === 'levels') {
        levelsWaiting.get(message.id)?.resolve(message.levels)
        levelsWaiting.delete(message.id)
      } else {
        const request = waiting.get(message.id)
        waiting.delete(message.id)
        keepAlive()
        if (message.type === 'verified') request?.resolve(message.verification)
        else {
          const error = new Error(message.error)
          request?.reject(error)
          levelsWaiting.get(message.id)?.reject(error)
          levelsWaiting.delete(message.id)
        }
      }
    })
    worker.on('error', (error) => {
      reject(error)
      fail(error)
    })
    worker.on('exit', (code) => {
      const error = new Error(`the face check thread stopped (exit code ${code})`)
      reject(error)
      fail(error)
    })
  })
  // A load failure also reaches every pending check; this alone must not crash the process.
  ready.catch(() => undefined)
  keepAlive()
  let next = 0
  return {
    ready,
    observe(original) {
      const id = next++
      const levels = new Promise<CheckLevels>((resolve, reject) => {
        if (broken !== undefined) return reject(broken)
        levelsWaiting.set(id, { resolve, reject })
        worker.postMessage({ type: 'original', id, volume: original } satisfies ToFaceCheckThread)
      })
      // Awaited only by verify; a check that is forgotten must not leave an unhandled rejection.
      levels.catch(() => undefined)
      return { id, levels }
    },
    verify(pending, original, defaced) {
      if (broken !== undefined) return Promise.reject(broken)
      const { id } = pending
      const post = (message: ToFaceCheckThread) => worker.postMessage(message)
      return new Promise<FaceVerification>((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        keepAlive()
        if (defaced === original) return post({ type: 'unchanged', id })
        pending.levels.then(
          (levels) => {
            const start = performance.now()
            try {
              renderReleased(defaced, levels, (look, view) => post({ type: 'view', id, look, view }))
            } catch (error) {
              waiting.delete(id)
              keepAlive()
              post({ type: 'forget', id })
              return reject(error as Error)
            }
            post({ type: 'rendered', id, renderMs: performance.now() - start })
          },
          (error: Error) => {
            waiting.delete(id)
            keepAlive()
            reject(error)
          },
        )
      })
    },
    forget(pending) {
      levelsWaiting.delete(pending.id)
      if (broken === undefined) worker.postMessage({ type: 'forget', id: pending.id } satisfies ToFaceCheckThread)
    },
    async close() {
      await worker.terminate()
    },
  }
}
