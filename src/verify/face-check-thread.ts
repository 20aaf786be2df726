/**
 * The face check on a thread of its own. The renders and detections of the original need only
 * the original, so they run while the main thread segments and defaces: on two cores the check
 * then costs little more than its second half. A thread that dies or fails makes every pending
 * check fail, and a failed check never releases anything.
 */
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import type { Volume } from '../io/volume.js'
import type { FaceVerification } from './verify-face-removed.js'

export type ToFaceCheckThread =
  | { type: 'original'; id: number; volume: Volume }
  | { type: 'defaced'; id: number; volume?: Volume }
  | { type: 'forget'; id: number }

export type FromFaceCheckThread =
  | { type: 'ready'; identity: FaceCheckIdentity }
  | { type: 'failed'; error: string }
  | { type: 'verified'; id: number; verification: FaceVerification }
  | { type: 'error'; id: number; error: string }

export interface FaceCheckIdentity {
  name: string
  sha256: string
}

/** A check under way: the original has been handed over. */
export interface PendingCheck {
  id: number
}

export interface FaceCheckThread {
  /**
   * Resolves once the thread has loaded its networks; rejects if it cannot. Checks may be handed
   * over before: they wait in the thread's queue, so loading overlaps the caller's other work.
   */
  ready: Promise<FaceCheckIdentity>
  /** Hands the original over; rendering and detection start at once. */
  observe(original: Volume): PendingCheck
  /** The verdict on the defaced volume, or on the original left unchanged when `defaced` is the original. */
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
  let broken: Error | undefined
  // The thread must not keep a finished process alive, only one that awaits its loading or a verdict.
  let loading = true
  const keepAlive = () => (loading || waiting.size > 0 ? worker.ref() : worker.unref())
  const fail = (error: Error) => {
    loading = false
    broken ??= error
    for (const { reject } of waiting.values()) reject(broken)
    waiting.clear()
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
      } else {
        const request = waiting.get(message.id)
        waiting.delete(message.id)
        keepAlive()
        if (message.type === 'verified') request?.resolve(message.verification)
        else request?.reject(new Error(message.error))
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
      if (broken === undefined) worker.postMessage({ type: 'original', id, volume: original } satisfies ToFaceCheckThread)
      return { id }
    },
    verify(pending, original, defaced) {
      if (broken !== undefined) return Promise.reject(broken)
      return new Promise<FaceVerification>((resolve, reject) => {
        waiting.set(pending.id, { resolve, reject })
        keepAlive()
        const message: ToFaceCheckThread = defaced === original ? { type: 'defaced', id: pending.id } : { type: 'defaced', id: pending.id, volume: defaced }
        worker.postMessage(message)
      })
    },
    forget(pending) {
      if (broken === undefined) worker.postMessage({ type: 'forget', id: pending.id } satisfies ToFaceCheckThread)
    },
    async close() {
      await worker.terminate()
    },
  }
}
