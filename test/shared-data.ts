/**
 * Tests that need the real scans in ../shared/data skip loudly when it is absent, so a missing
 * folder can never pass for a green run unnoticed.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe } from 'vitest'

export const SHARED_DATA = resolve(import.meta.dirname, '..', '..', 'shared', 'data')
export const hasSharedData = existsSync(join(SHARED_DATA, 'heads'))

export function sharedPath(...parts: string[]): string {
  return join(SHARED_DATA, ...parts)
}

export function sharedFiles(folder: string, pattern = /\.nii(\.gz)?$/): string[] {
  if (!hasSharedData) return []
  return readdirSync(join(SHARED_DATA, folder))
    .filter((name) => pattern.test(name))
    .sort()
    .map((name) => join(SHARED_DATA, folder, name))
}

/** describe() that runs only with ../shared/data, and says so on stderr when it does not. */
export function describeWithSharedData(name: string, body: () => void): void {
  if (!hasSharedData) {
    console.warn(`SKIPPED (no ${SHARED_DATA}): ${name}`)
  }
  describe.skipIf(!hasSharedData)(`${name} [../shared/data]`, body)
}
