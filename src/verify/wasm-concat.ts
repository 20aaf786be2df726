/**
 * A quicker Concat for TensorFlow.js's WebAssembly backend, which face-api leans on without
 * knowing it: every network normalises its input by concatenating three one-channel tensors along
 * the channel axis, and the backend's own Concat, written in JavaScript, copies that one element at
 * a time through a fresh subarray, 76,800 of them for one 160x160 detector input. That alone took
 * about 0.25 s of CPU per scan (30 detector passes, plus the landmark and recognition nets). This
 * kernel makes the same copy with plain loops; the values are the same, so are the detections.
 */
import type * as Tf from '@tensorflow/tfjs'

type TypedArray = Float32Array | Int32Array | Uint8Array

/** The two methods of the WebAssembly backend the copy needs (its class is not exported). */
interface WasmHeap {
  makeOutput(shape: number[], dtype: Tf.DataType): Tf.TensorInfo
  typedArrayFromHeap(tensor: Tf.TensorInfo): TypedArray
}

export function registerQuickConcat(tf: typeof import('@tensorflow/tfjs')): void {
  const original = tf.getKernel('Concat', 'wasm')
  if (original === undefined) throw new Error('the WebAssembly backend has no Concat kernel to replace')
  const fallback = original.kernelFunc
  const quickConcat: Tf.KernelFunc = (args) => {
    const inputs = Object.values(args.inputs) as Tf.TensorInfo[]
    const first = inputs[0]
    const attrs = args.attrs as { axis: number | number[] } | undefined
    // Strings, and the cases the backend answers without copying, stay with the backend.
    if (first === undefined || attrs === undefined || inputs.some((t) => t.dtype === 'string')) return fallback(args)
    const parts = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0)
    if (parts.length < 2) return fallback(args)
    const axis = tf.util.parseAxisParam(attrs.axis, first.shape)[0] as number
    tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis)
    const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis)
    const heap = args.backend as unknown as WasmHeap
    const out = heap.makeOutput(outShape, first.dtype)
    const outer = tf.util.sizeFromShape(parts[0]?.shape.slice(0, axis) ?? [])
    const widths = parts.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)))
    const rowWidth = widths.reduce((a, b) => a + b, 0)
    // Views of the heap are taken after the output is allocated, which may have moved it.
    const target = heap.typedArrayFromHeap(out)
    let offset = 0
    parts.forEach((part, p) => {
      const source = heap.typedArrayFromHeap(part)
      const width = widths[p] as number
      for (let row = 0; row < outer; row++) {
        const from = row * width
        const to = row * rowWidth + offset
        if (width > 16) target.set(source.subarray(from, from + width), to)
        else for (let k = 0; k < width; k++) target[to + k] = source[from + k] as number
      }
      offset += width
    })
    return out
  }
  tf.unregisterKernel('Concat', 'wasm')
  tf.registerKernel({ kernelName: 'Concat', backendName: 'wasm', kernelFunc: quickConcat })
}
