/**
 * The face check's own thread (see face-check-thread.ts): it loads the face networks and answers
 * three requests. "Here is the original": it answers with the skin levels both volumes are
 * rendered at, then renders and detects, keeping what it saw. "Here is a render of the volume to
 * be released" (one per view, from the calling thread, which renders them): each goes through the
 * detector as it comes. "That was the last" (or "the volume was left unchanged"): the verdict.
 * Running here, the first half overlaps the segmentation and the defacing on the other core, and
 * the detection of the released volume overlaps its rendering.
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort } from 'node:worker_threads'
import { skinLevels } from './render-surface.js'
import { ArrivingRenders, loadFaceCheck, observeOriginalVolume, verifyAgainstOriginal, type CheckLevels, type FaceVerification, type OriginalSeen } from './verify-face-removed.js'
import type { FromFaceCheckThread, ToFaceCheckThread } from './face-check-thread.js'

/** Nice steps below the process's priority; lowering it by 5, 10 or 19 gave the same times. */
const NICENESS_STEPS = 5

const port = parentPort
if (port === null) throw new Error('face-check-worker runs only as a worker thread')
yieldToTheMainThread()
const check = loadFaceCheck()
const checks = new Map<number, { seen: Promise<OriginalSeen>; arriving?: ArrivingRenders }>()
const reply = (message: FromFaceCheckThread) => port.postMessage(message)

check.then(
  (loaded) => reply({ type: 'ready', identity: loaded.identity }),
  (error: unknown) => reply({ type: 'failed', error: errorText(error) }),
)

port.on('message', (message: ToFaceCheckThread) => {
  const { id } = message
  if (message.type === 'original') {
    let levels: CheckLevels
    try {
      levels = skinLevels(message.volume)
    } catch (error) {
      reply({ type: 'error', id, error: errorText(error) })
      return
    }
    reply({ type: 'levels', id, levels })
    const seen = check.then((loaded) => observeOriginalVolume(message.volume, levels, loaded))
    // Failures are reported when the verdict is asked for.
    seen.catch(() => undefined)
    checks.set(id, { seen })
    return
  }
  const entry = checks.get(id)
  if (message.type === 'forget') {
    checks.delete(id)
    return
  }
  if (message.type === 'view') {
    if (entry === undefined) return
    entry.arriving ??= new ArrivingRenders(entry.seen, check)
    entry.arriving.add(message.look, message.view)
    return
  }
  checks.delete(id)
  const run = async (): Promise<FaceVerification> => {
    if (entry === undefined) throw new Error(`no original was sent for check ${id}`)
    if (message.type === 'unchanged') return verifyAgainstOriginal(await entry.seen, undefined, await check)
    if (entry.arriving === undefined) throw new Error(`no render of the defaced volume arrived for check ${id}`)
    return entry.arriving.finish(message.renderMs, true)
  }
  run().then(
    (verification) => reply({ type: 'verified', id, verification }),
    (error: unknown) => reply({ type: 'error', id, error: errorText(error) }),
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
