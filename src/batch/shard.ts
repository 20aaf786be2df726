/**
 * --shard K/N: which 1/N of a dataset one run does. Work is assigned by a hash of its
 * dataset-relative key (an image path, or the folder of a --mask-from group), so a file stays in
 * its shard when others are added or removed, every machine computes the same split, and the N
 * shards together cover every file exactly once.
 */
import { createHash } from 'node:crypto'
import { UsageError } from '../io/errors.js'

export interface Shard {
  /** 1-based. */
  index: number
  count: number
}

export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim())
  const index = Number(match?.[1])
  const count = Number(match?.[2])
  if (match === null || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index < 1 || index > count) {
    throw new UsageError(`--shard needs K/N with 1 <= K <= N (for example 3/8), got '${text}'`)
  }
  return { index, count }
}

/** The 1-based shard that owns a key. */
export function shardOf(key: string, count: number): number {
  const digest = createHash('sha256').update(key).digest()
  return (digest.readUInt32BE(0) % count) + 1
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return shard === undefined || shard.count === 1 || shardOf(key, shard.count) === shard.index
}

/** The suffix of per-shard file names: '' unsharded, '.shard-3-of-8' for 3/8. */
export function shardSuffix(shard: Shard | undefined): string {
  return shard === undefined ? '' : `.shard-${shard.index}-of-${shard.count}`
}
