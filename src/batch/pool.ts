/**
 * A pool of worker processes (not threads: each has its own heap, its own onnxruntime and tfjs,
 * and a crash or an out-of-memory kill takes one worker, not the run). Each worker loads the
 * networks once and takes one unit at a time, so memory is jobs x (models + one unit's volumes)
 * whatever the size of the dataset. A worker that dies is replaced, and the images it had not
 * finished are reported to the caller, which records them as errors.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { availableParallelism, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { UnfaceError } from '../io/errors.js'
import type { ManifestRow } from './manifest.js'
import type { FromWorker, ModelIdentity, RunContext, ToWorker, UnitJob } from './protocol.js'

const HERE = fileURLToPath(import.meta.url)
const FROM_SOURCE = HERE.endsWith('.ts')
const WORKER = join(dirname(HERE), FROM_SOURCE ? 'worker.ts' : 'worker.js')

export interface PoolHandlers {
  /** The next unit to do, or undefined when there is none left. */
  nextJob(): Promise<UnitJob | undefined>
  onStart(input: string): void
  /** Awaited before the worker's next message is handled, so rows are recorded in order. */
  onRow(row: ManifestRow): Promise<void>
  /** A worker died while doing `job`; `unfinished` are its images that got no row. */
  onWorkerDied(job: UnitJob, unfinished: string[], reason: string, models: ModelIdentity | undefined): Promise<void>
  /** Worker output (itk-wasm, tfjs), shown with --debug. */
  onOutput?(text: string): void
}

/** The run cannot go on (the models cannot be loaded, workers cannot start or keep dying). */
export class FatalWorkerError extends UnfaceError {}

export async function runPool(jobs: number, context: RunContext, handlers: PoolHandlers): Promise<void> {
  let fatal: Error | undefined
  const slot = async () => {
    let consecutiveDeaths = 0
    while (fatal === undefined) {
      const outcome = await runWorker(context, handlers, () => fatal !== undefined)
      if (outcome === 'finished') return
      if (outcome instanceof FatalWorkerError) {
        fatal ??= outcome
        return
      }
      // Died: a worker that keeps dying before it finishes anything is not worth restarting forever.
      consecutiveDeaths = outcome.finishedAny ? 0 : consecutiveDeaths + 1
      if (consecutiveDeaths >= 3) {
        fatal ??= new FatalWorkerError(`workers keep dying (${outcome.reason})`)
        return
      }
    }
  }
  await Promise.all(Array.from({ length: jobs }, slot))
  if (fatal !== undefined) throw fatal
}

type WorkerOutcome = 'finished' | FatalWorkerError | { died: true; reason: string; finishedAny: boolean }

function runWorker(context: RunContext, handlers: PoolHandlers, aborted: () => boolean): Promise<WorkerOutcome> {
  return new Promise((resolveOutcome) => {
    const child: ChildProcess = fork(WORKER, [], {
      execArgv: FROM_SOURCE ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: workerEnvironment(process.env),
    })
    let tail = ''
    const keep = (chunk: Buffer) => {
      const text = chunk.toString('utf8')
      handlers.onOutput?.(text)
      tail = (tail + text).slice(-2000)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)

    let models: ModelIdentity | undefined
    let current: { job: UnitJob; rowsFor: Set<string> } | undefined
    let finishedAny = false
    let settled = false
    let chain: Promise<void> = Promise.resolve()
    const settle = (outcome: WorkerOutcome) => {
      if (settled) return
      settled = true
      resolveOutcome(outcome)
    }
    const post = (message: ToWorker) => {
      if (child.connected) child.send(message)
    }
    const dispatch = async () => {
      const job = aborted() ? undefined : await handlers.nextJob()
      if (job === undefined) {
        current = undefined
        post({ type: 'stop' })
        return
      }
      current = { job, rowsFor: new Set() }
      post({ type: 'job', job })
    }

    child.on('message', (message: FromWorker) => {
      chain = chain.then(async () => {
        if (message.type === 'ready') {
          models = message.models
          await dispatch()
        } else if (message.type === 'fatal') {
          settle(new FatalWorkerError(`the models could not be loaded: ${message.error}`))
          child.kill()
        } else if (message.type === 'start') {
          handlers.onStart(message.input)
        } else if (message.type === 'row') {
          current?.rowsFor.add(message.row.input)
          await handlers.onRow(message.row)
        } else if (message.type === 'done') {
          finishedAny = true
          await dispatch()
        }
      })
    })
    child.on('exit', (code, signal) => {
      chain = chain.then(async () => {
        if (settled) return
        if (current === undefined && code === 0) {
          settle('finished')
          return
        }
        const how = signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`
        const detail = lastLine(tail)
        const reason = `the worker process ${how}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}${detail === '' ? '' : `: ${detail}`}`
        if (current !== undefined) {
          const unfinished = current.job.todo.filter((input) => !current?.rowsFor.has(input))
          await handlers.onWorkerDied(current.job, unfinished, reason, models)
        }
        settle({ died: true, reason, finishedAny })
      })
    })
    child.on('error', (error) => {
      settle(new FatalWorkerError(`could not start a worker process: ${error.message}`))
    })
    post({ type: 'context', context })
  })
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  return (lines[lines.length - 1] ?? '').slice(0, 300)
}

/** What one worker may hold at its peak: the models and a 256^3 scan's arrays came to 0.7-0.8 GB (docs/dataset-benchmark.md). */
const MEMORY_PER_WORKER = 2 ** 30

/**
 * Workers when --jobs is not given: one per core, but no more than the memory holds, so that a
 * machine with many cores and little memory per core is not pushed into killing workers.
 */
export function defaultJobs(cores: number = availableParallelism(), memoryBytes: number = totalmem()): number {
  return Math.max(1, Math.min(cores, Math.floor(memoryBytes / MEMORY_PER_WORKER)))
}

/**
 * A worker allocates several volume-sized arrays per scan, each fresh from the kernel, and on a
 * virtual machine the page faults cost as much as the arithmetic. glibc's hugetlb tunable (2.35
 * and later; ignored by older glibc and by other C libraries) backs them with transparent huge
 * pages where the system allows it on request: `unface dataset --jobs 2` on the benchmark's folder
 * took about 10% less CPU with it (docs/benchmarks.md, second round). A setting of the user's own wins.
 */
export function workerEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const tunables = env.GLIBC_TUNABLES ?? ''
  if (tunables.includes('glibc.malloc.hugetlb')) return env
  return { ...env, GLIBC_TUNABLES: tunables === '' ? 'glibc.malloc.hugetlb=1' : `${tunables}:glibc.malloc.hugetlb=1` }
}
