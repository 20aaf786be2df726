// Checks the exported ONNX model with onnxruntime-node (the runtime the CLI will use):
// same output as PyTorch on the reference input written by export_onnx.py, and the time of one
// model step on a 96^3 input with 2 intra-op threads.
// Usage (from the repository root): node models/train/check_onnx.mjs [models/unface-seg.onnx]
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import path from 'node:path'
const require = createRequire(path.resolve('package.json'))
const ort = require('onnxruntime-node')
const model = process.argv[2] ?? 'models/unface-seg.onnx'
const dir = 'models/train/work'
const x = new Float32Array(readFileSync(path.join(dir, 'onnx_check_x.bin')).buffer.slice(0))
const ref = new Float32Array(readFileSync(path.join(dir, 'onnx_check_probs.bin')).buffer.slice(0))
const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1,
  graphOptimizationLevel: 'all' })
const input = new ort.Tensor('float32', x, [1, 1, 96, 96, 96])
let out = (await session.run({ input })).probs
let maxDiff = 0
for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out.data[i] - ref[i]))
const times = []
for (let r = 0; r < 5; r++) {
  const t = process.hrtime.bigint()
  out = (await session.run({ input })).probs
  times.push(Number(process.hrtime.bigint() - t) / 1e6)
}
times.sort((a, b) => a - b)
console.log(JSON.stringify({ model, outputDims: out.dims, maxAbsDiffVsTorch: maxDiff,
  msPerRun: { min: times[0], median: times[2], max: times[4] } }))
