import { createRequire } from 'node:module'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadFaceModel } from './face-detector.js'

// The tfjs instance face-api runs on: the one loadFaceModel set up, with the kernel replaced.
const tf = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs')

beforeAll(async () => {
  await loadFaceModel()
})

describe('the WebAssembly backend with the quicker Concat', () => {
  it('is the kernel in use', () => {
    expect(tf.getBackend()).toBe('wasm')
    expect(tf.getKernel('Concat', 'wasm')?.kernelFunc.name).toBe('quickConcat')
  })

  const a = [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]
  const b = [[[13], [14]], [[15], [16]]]
  const c = [[[17, 18], [19, 20]], [[21, 22], [23, 24]]]

  it('concatenates along the last axis, one element per row and part, as face-api normalises images', () => {
    const out = tf.concat([tf.tensor3d(a), tf.tensor3d(b), tf.tensor3d(c)], 2)
    expect(out.shape).toEqual([2, 2, 6])
    expect(out.arraySync()).toEqual([
      [[1, 2, 3, 13, 17, 18], [4, 5, 6, 14, 19, 20]],
      [[7, 8, 9, 15, 21, 22], [10, 11, 12, 16, 23, 24]],
    ])
  })

  it('concatenates along the first and middle axes, in float32 and int32, and skips empty parts', () => {
    const negated = a.map((m) => m.map((r) => r.map((v) => -v)))
    expect(tf.concat([tf.tensor3d(a), tf.tensor3d(negated)], 0).arraySync()).toEqual([...a, ...negated])
    const int = tf.concat([tf.tensor3d(a, undefined, 'int32'), tf.tensor3d([[[0, 0, 0]], [[1, 1, 1]]], undefined, 'int32'), tf.zeros([2, 0, 3], 'int32')], 1)
    expect(int.dtype).toBe('int32')
    expect(int.arraySync()).toEqual([
      [[1, 2, 3], [4, 5, 6], [0, 0, 0]],
      [[7, 8, 9], [10, 11, 12], [1, 1, 1]],
    ])
    // Wide rows take the block copy.
    const wide = Array.from({ length: 40 }, (_, i) => i)
    expect(tf.concat([tf.tensor2d([wide, wide]), tf.tensor2d([[1], [2]])], 1).arraySync()).toEqual([[...wide, 1], [...wide, 2]])
  })
})
