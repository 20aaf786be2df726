/**
 * Evaluates the shipped segmentation path (TypeScript preprocessing + onnxruntime-node), not the
 * Python one, on the real scans in ../shared/data:
 *   - brain-mask voxels (DLMUSE label > 0) that fall inside the predicted face or ears, per IXI head;
 *   - where the face is relative to the brain (mm anterior / superior, RAS) on every head, the
 *     FLAIR, the CT and permuted inputs;
 *   - face voxels on the skull-stripped control (must be 0).
 * Usage: npx tsx scripts/evaluate-segmentation.ts [model.onnx]
 */
import { existsSync, readdirSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import type { Geometry, Vec3 } from '../src/io/volume.js'
import { readVolume } from '../src/io/read-volume.js'
import { mat3Vec3 } from '../src/io/matrix.js'
import { LABELS, loadSegmentationModel, segmentHead, DEFAULT_MODEL_PATH } from '../src/segment/segment-head.js'

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data')
if (!existsSync(data)) {
  console.error(`no ${data}: nothing to evaluate`)
  process.exit(1)
}
const model = await loadSegmentationModel(process.argv[2] ?? DEFAULT_MODEL_PATH)

function centroidRas(geometry: Geometry, labels: Uint8Array, wanted: number): Vec3 | undefined {
  const [nx, ny] = geometry.size
  const sum: Vec3 = [0, 0, 0]
  let count = 0
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== wanted) continue
    const index: Vec3 = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]
    const p = mat3Vec3(geometry.direction, index.map((v, a) => v * (geometry.spacing[a] as number)) as Vec3)
    sum[0] -= geometry.origin[0] + p[0]
    sum[1] -= geometry.origin[1] + p[1]
    sum[2] += geometry.origin[2] + p[2]
    count++
  }
  return count === 0 ? undefined : (sum.map((s) => s / count) as Vec3)
}

const heads = readdirSync(join(data, 'heads')).filter((f) => f.endsWith('.nii.gz')).sort().map((f) => join(data, 'heads', f))
const inputs = [...heads, join(data, 'dicom', 'slicer_ctheadaxial_quarter'), join(data, 'dicom', 'philips_adni_mprage'), join(data, 'controls', 'MR_Gd_skullstripped.nii.gz')]

console.log(`model ${model.path}\n`)
console.log('| input | face voxels | ear voxels | face centroid vs brain (mm anterior, superior) | brain-mask voxels in face/ears | model step (ms) |')
console.log('|---|---|---|---|---|---|')
let brainViolations = 0
for (const path of inputs) {
  const volume = await readVolume(path)
  const { labels, counts, timingsMs } = await segmentHead(volume, model)
  const face = centroidRas(volume, labels, LABELS.face)
  const brain = centroidRas(volume, labels, LABELS.brain)
  const relation = face && brain ? `${(face[1] - brain[1]).toFixed(0)}, ${(face[2] - brain[2]).toFixed(0)}` : 'n/a'
  let inBrain = 'n/a'
  const maskPath = join(data, 'brainmasks', basename(path).replace('_T1.nii.gz', '_T1_DLMUSE.nii.gz'))
  if (path.includes('IXI') && existsSync(maskPath)) {
    const mask = await readVolume(maskPath)
    let n = 0
    for (let i = 0; i < labels.length; i++) {
      if ((mask.data[i] as number) > 0 && (labels[i] === LABELS.face || labels[i] === LABELS.ears)) n++
    }
    brainViolations += n
    inBrain = String(n)
  }
  console.log(`| ${basename(path)} | ${counts.face} | ${counts.ears} | ${relation} | ${inBrain} | ${timingsMs.model} |`)
}
console.log(`\ntotal brain-mask voxels inside face/ears over the IXI heads with masks: ${brainViolations}`)
