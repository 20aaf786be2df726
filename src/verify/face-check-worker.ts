/**
 * The face check's own thread (see face-check-thread.ts): it loads the face networks and answers
 * two requests, "here is the original" (render and detect, kept until asked for) and "here is
 * the defaced volume" (render, detect, judge). Running here, the first half overlaps the
 * segmentation and the defacing on the other core.
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort } from 'node:worker_threads'
import type { Volume } from '../io/volume.js'
import { loadFaceCheck, observeOriginalVolume, verifyAgainstOriginal, type OriginalSeen } from './verify-face-removed.js'
import type { FromFaceCheckThread, ToFaceCheckThread } from './face-check-thread.js'

/** Nice steps below the process's priority; lowering it by 5, 10 or 19 gave the same times. */
const NICENESS_STEPS = 5

const port = parentPort
if (port === null) throw new Error('face-check-worker runs only as a worker thread')
yieldToTheMainThread()
const check = loadFaceCheck()
const originals = new Map<number, Promise<OriginalSeen>>()
const reply = (message: FromFaceCheckThread) => port.postMessage(message)

check.then(
  (loaded) => reply({ type: 'ready', identity: loaded.identity }),
  (error: unknown) => reply({ type: 'failed', error: errorText(error) }),
)

port.on('message', (message: ToFaceCheckThread) => {
  if (message.type === 'original') {
    const seen = check.then((loaded) => observeOriginalVolume(message.volume, loaded))
    // Failures are reported when the verdict is asked for.
    seen.catch(() => undefined)
    originals.set(message.id, seen)
    return
  }
  if (message.type === 'forget') {
    originals.delete(message.id)
    return
  }
  const seen = originals.get(message.id)
  originals.delete(message.id)
  const run = async () => {
    if (seen === undefined) throw new Error(`no original was sent for check ${message.id}`)
    const loaded = await check
    return verifyAgainstOriginal(await seen, message.volume as Volume | undefined, loaded)
  }
  run().then(
    (verification) => reply({ type: 'verified', id: message.id, verification }),
    (error: unknown) => reply({ type: 'error', id: message.id, error: errorText(error) }),
  )
})

function errorText(error: unknown): string {
  return (error as Error)?.message ?? String(error)
}

/**
 * The original's renders and detections finish well before the defaced volume is ready, while
 * the segmentation on the main thread is what the verdict waits for. At a lower priority this
 * thread lets the network's threads have both cores when they run: the 256^3 deface command took
 * 2.77 s instead of 2.97 s (medians of 5, interleaved, 2 cores). Linux names a thread's own id
 * in /proc/thread-self, and setpriority on that id changes this thread alone; elsewhere the
 * thread keeps the process's priority.
 */
function yieldToTheMainThread(): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop())
    // Relative to what it inherited, so that a process started with `nice` keeps its thread below itself.
    if (Number.isInteger(threadId) && threadId > 0) setPriority(threadId, Math.min(19, getPriority(threadId) + NICENESS_STEPS))
  } catch {
    // No /proc (not Linux): nothing to do.
  }
}
