/**
 * One run per OUT_DIR (and shard) at a time: two runs of the same shard would remove each
 * other's temporary files and append to one manifest. The lock is a file created exclusively;
 * a lock left by a run that was killed is taken over when its process is gone (same host). A
 * lock from another host cannot be checked, so it is taken over with a note: a requeued cluster
 * job must not wait forever for a node that died.
 */
import { open, readFile, rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { UnfaceError } from '../io/errors.js'
import { shardSuffix, type Shard } from './shard.js'

interface LockContents {
  pid: number
  host: string
  started: string
}

export interface Lock {
  release(): Promise<void>
  /** Set when a lock from another host was taken over. */
  note?: string
}

export function lockPath(outDir: string, shard: Shard | undefined): string {
  return join(outDir, `.unface-lock${shardSuffix(shard)}`)
}

export async function acquireLock(outDir: string, shard: Shard | undefined): Promise<Lock> {
  const path = lockPath(outDir, shard)
  const mine: LockContents = { pid: process.pid, host: hostname(), started: new Date().toISOString() }
  let note: string | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(`${JSON.stringify(mine)}\n`)
      await handle.close()
      return { release: () => rm(path, { force: true }), ...(note === undefined ? {} : { note }) }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = await readFile(path, 'utf8')
      .then((text) => JSON.parse(text) as LockContents)
      .catch(() => undefined)
    if (holder !== undefined && holder.host === mine.host && isAlive(holder.pid)) {
      throw new UnfaceError(
        `another unface run (pid ${holder.pid}, started ${holder.started}) is writing into this folder${shard === undefined ? '' : ` for shard ${shard.index}/${shard.count}`}; wait for it, or stop it (if it is not running, remove ${path})`,
        { file: outDir },
      )
    }
    if (holder !== undefined && holder.host !== mine.host) {
      note = `took over the lock of a run on ${holder.host} (pid ${holder.pid}, started ${holder.started}); make sure it is not still running`
    }
    await rm(path, { force: true })
  }
  throw new UnfaceError('could not take the run lock', { file: path })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
