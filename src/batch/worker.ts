/**
 * A dataset worker process: loads the networks once, then defaces the units its parent sends,
 * one at a time, answering with one manifest row per image. It exits when told to, and when its
 * parent goes away (even killed with SIGKILL, the IPC channel closes), so no orphan keeps
 * writing into the output.
 */
import { loadModels, type Models } from '../pipeline.js'
import { fileSha256 } from '../report/provenance.js'
import { processUnit } from './process-unit.js'
import type { FromWorker, ModelIdentity, RunContext, ToWorker } from './protocol.js'

function send(message: FromWorker): void {
  process.send?.(message)
}

process.on('disconnect', () => process.exit(0))

let context: RunContext | undefined
let ready: Promise<{ models: Models; identity: ModelIdentity }> | undefined
let queue: Promise<void> = Promise.resolve()

process.on('message', (message: ToWorker) => {
  if (message.type === 'context') {
    context = message.context
    const verify = message.context.settings.verify
    ready = (async () => {
      const models = await loadModels({ verify, threads: message.context.threadsPerWorker })
      const identity: ModelIdentity = {
        segmentationSha256: await fileSha256(models.segmentation.path),
        faceCheckSha256: (await models.faceCheck?.ready)?.sha256 ?? null,
      }
      return { models, identity }
    })()
    ready.then(
      ({ identity }) => send({ type: 'ready', models: identity }),
      (error: unknown) => {
        process.send?.({ type: 'fatal', error: (error as Error)?.message ?? String(error) } satisfies FromWorker, () => process.exit(1))
      },
    )
    return
  }
  if (message.type === 'stop') {
    void queue.then(() => process.exit(0))
    return
  }
  const job = message.job
  queue = queue.then(async () => {
    if (context === undefined || ready === undefined) throw new Error('job before context')
    const { models, identity } = await ready
    await processUnit(job, context, models, identity, {
      start: (input) => send({ type: 'start', id: job.id, input }),
      row: (row) => send({ type: 'row', id: job.id, row }),
      // A parent that has gone away wants nothing more: stop at the next stage.
      stage: () => {
        if (!process.connected) process.exit(0)
      },
    })
    send({ type: 'done', id: job.id })
  }).catch((error: unknown) => {
    // processUnit records every expected failure as a row; anything else ends this worker, and
    // the parent records the unit's unfinished images as errors and starts a new one.
    process.stderr.write(`unface worker: ${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(70)
  })
})
