/**
 * A synthetic head for tests that must run without ../shared: scalp, skull, CSF, brain, a face
 * (brow, orbits and eyes, nose, cheeks, lips, teeth, jaw, chin), ears and a neck, defined
 * analytically in RAS millimetres with the head near the origin. Each voxel centre is placed by
 * the grid geometry and then classified, so every orientation and obliquity is right by
 * construction and the ground-truth labels come with it.
 *
 * Shapes are signed distance functions (negative inside, in mm) joined with smooth minima, so
 * the rendered skin looks like a face rather than a pile of ellipsoids. The outer skin is partial
 * volumed over one voxel, as a scanner would, so surface renderings are not staircased.
 *
 * Stored values: MR is uint8 (like the IXI heads), CT is int16 in Hounsfield units.
 */
import { mat3Vec3 } from '../../src/io/matrix.js'
import type { Mat3, Modality, PixelType, Vec3, Volume } from '../../src/io/volume.js'
import { allocateVoxels, voxelCount } from '../../src/io/volume.js'
import { rotation } from '../synthetic-volume.js'
import { LABELS } from '../../src/segment/segment-head.js'

type LR = 'L' | 'R'
type AP = 'A' | 'P'
type SI = 'S' | 'I'
/** nibabel axis code: letter c names the RAS direction in which voxel axis c increases. */
export type AxisCode =
  | `${LR}${AP}${SI}`
  | `${LR}${SI}${AP}`
  | `${AP}${LR}${SI}`
  | `${AP}${SI}${LR}`
  | `${SI}${LR}${AP}`
  | `${SI}${AP}${LR}`

export type PhantomContrast = 'T1' | 'T2' | 'CT'

export interface HeadPhantomOptions {
  contrast: PhantomContrast
  orientation: AxisCode
  /** Right-handed rotation of the grid, in degrees, about the R, A and S axes, applied in that order. */
  obliqueDegrees?: Vec3
  /** Voxel size in mm along L-R, A-P and S-I (anatomical order, not voxel-axis order). Default 2 mm. */
  spacing?: Vec3
  /** Extent in mm along L-R, A-P and S-I, centred on the head. Default 200 x 240 x 240. */
  fieldOfView?: Vec3
  /** false gives the brain alone, like a skull-stripped control with no face. Default true. */
  face?: boolean
  /** Noise standard deviation in stored units: Rician for MR (as in magnitude images), Gaussian for CT. Default 0. */
  noise?: number
  /** Seed of the noise generator. Default 1. */
  seed?: number
}

/** Ground truth on the volume's grid, 1 = inside. */
export interface HeadPhantomLabels {
  /** Below the brow and in front of the ears: orbits and eyes, nose, cheeks, lips, teeth, jaw, chin. */
  face: Uint8Array
  /** The parts of the ears that stand out from the head. */
  ears: Uint8Array
  /** Intracranial brain (above the foramen magnum), ventricles and sulci included. */
  brain: Uint8Array
  /** Everything inside the skin, internal air (sinuses, airway) included. */
  head: Uint8Array
}

export interface HeadPhantom {
  volume: Volume
  labels: HeadPhantomLabels
}

/** The ground truth as one label map with unface's label values, as the segmentation stage gives it. */
export function phantomLabelMap({ labels }: HeadPhantom): Uint8Array {
  const out = new Uint8Array(labels.head.length)
  for (let i = 0; i < out.length; i++) {
    if (labels.brain[i]) out[i] = LABELS.brain
    else if (labels.face[i]) out[i] = LABELS.face
    else if (labels.ears[i]) out[i] = LABELS.ears
    else if (labels.head[i]) out[i] = LABELS.head
  }
  return out
}

const DEFAULT_SPACING: Vec3 = [2, 2, 2]
const DEFAULT_FIELD_OF_VIEW: Vec3 = [200, 240, 240]
/** RAS point at the centre of the field of view: the head with its nose, ears and a neck. */
const FIELD_OF_VIEW_CENTRE: Vec3 = [0, 8, -8]

// Tissues, indexing the intensity tables below.
const AIR = 0
const SKIN = 1
const FAT = 2
const MUSCLE = 3
const BONE = 4
const MARROW = 5
const TEETH = 6
const CSF = 7
const GREY = 8
const WHITE = 9
const VITREOUS = 10

const INTENSITIES: Record<PhantomContrast, readonly number[]> = {
  //    air  skin  fat muscle bone marrow teeth  csf grey white vitreous
  T1: [0, 120, 235, 85, 15, 150, 5, 35, 105, 165, 30],
  T2: [0, 90, 150, 45, 10, 110, 5, 245, 120, 75, 235],
  CT: [-1000, 45, -90, 45, 1300, 750, 2500, 8, 38, 28, 12],
}

const PIXEL_RANGE: Record<'uint8' | 'int16', [number, number]> = {
  uint8: [0, 255],
  int16: [-32768, 32767],
}

/** Skin 2 mm and subcutaneous fat 3 mm over the skull; skull 7 mm over 2.5 mm of CSF. */
const CSF_OUTER = 2.5
const SKULL_OUTER = 9.5
const SCALP_OUTER = 14.5
/** Face voxels keep at least this distance (mm) from the brain. */
const FACE_BRAIN_MARGIN = 12
/** Below this the brain SDF continues as the spinal cord, which is not intracranial. */
const FORAMEN_MAGNUM_Z = -45
/** Beyond this distance (mm) outside the surface a voxel is all air, for voxels up to 8 mm. */
const PARTIAL_VOLUME_REACH = 4
/**
 * A smooth union pulls a surface out by at most a quarter of its smoothing; the face's add up
 * to under 25 mm. So this far outside the face's bounding box, and outside the scalp, the face
 * cannot bring the skin within PARTIAL_VOLUME_REACH, and the voxel is air without computing it;
 * likewise for the ears. (Every such shortcut below was checked to leave the output unchanged.)
 */
const FACE_REACH = 30
const EAR_REACH = 8

export function makeHeadPhantom(options: HeadPhantomOptions): HeadPhantom {
  const spacingRas = options.spacing ?? DEFAULT_SPACING
  const fieldOfView = options.fieldOfView ?? DEFAULT_FIELD_OF_VIEW
  const rotate = rotation(options.obliqueDegrees ?? [0, 0, 0])

  const size = [0, 0, 0] as Vec3
  const spacing = [0, 0, 0] as Vec3
  const columns: Vec3[] = []
  for (let c = 0; c < 3; c++) {
    const { axis, sign } = letterAxis(options.orientation[c] as string)
    spacing[c] = spacingRas[axis]
    size[c] = Math.max(1, Math.round(fieldOfView[axis] / spacingRas[axis]))
    const unit: Vec3 = [0, 0, 0]
    unit[axis] = sign
    columns.push(mat3Vec3(rotate, unit))
  }
  const [d0, d1, d2] = columns as [Vec3, Vec3, Vec3]
  const directionRas: Mat3 = [d0[0], d1[0], d2[0], d0[1], d1[1], d2[1], d0[2], d1[2], d2[2]]
  const halfDiagonal = mat3Vec3(directionRas, [
    (spacing[0] * (size[0] - 1)) / 2,
    (spacing[1] * (size[1] - 1)) / 2,
    (spacing[2] * (size[2] - 1)) / 2,
  ])
  const [cx, cy, cz] = FIELD_OF_VIEW_CENTRE
  const originRas: Vec3 = [cx - halfDiagonal[0], cy - halfDiagonal[1], cz - halfDiagonal[2]]

  const pixelType: PixelType = options.contrast === 'CT' ? 'int16' : 'uint8'
  const modality: Modality = options.contrast === 'CT' ? 'CT' : 'MR'
  const table = INTENSITIES[options.contrast]
  const airValue = table[AIR] as number
  const [low, high] = PIXEL_RANGE[pixelType]
  const n = voxelCount(size)
  const data = allocateVoxels(pixelType, n)
  const labels: HeadPhantomLabels = {
    face: new Uint8Array(n),
    ears: new Uint8Array(n),
    brain: new Uint8Array(n),
    head: new Uint8Array(n),
  }
  const withFace = options.face ?? true
  const sample = withFace ? sampleHead : sampleBrainOnly
  const noise = options.noise ?? 0
  const normal = normalPairs(options.seed ?? 1)
  // The skin is blurred over one voxel; the geometric mean stands in for the size across it.
  const voxelSize = Math.cbrt(spacing[0] * spacing[1] * spacing[2])
  const s: Sample = { tissue: AIR, surface: 0, brain: false, face: false, ears: false }
  const p: Point = { x: 0, ax: 0, y: 0, z: 0 }

  let index = 0
  for (let k = 0; k < size[2]; k++) {
    for (let j = 0; j < size[1]; j++) {
      const rowX = originRas[0] + d2[0] * spacing[2] * k + d1[0] * spacing[1] * j
      const rowY = originRas[1] + d2[1] * spacing[2] * k + d1[1] * spacing[1] * j
      const rowZ = originRas[2] + d2[2] * spacing[2] * k + d1[2] * spacing[1] * j
      for (let i = 0; i < size[0]; i++, index++) {
        p.x = rowX + d0[0] * spacing[0] * i
        p.ax = Math.abs(p.x)
        p.y = rowY + d0[1] * spacing[0] * i
        p.z = rowZ + d0[2] * spacing[0] * i
        sample(p, s)
        const inside = Math.min(1, Math.max(0, 0.5 - s.surface / voxelSize))
        let value = airValue + ((table[s.tissue] as number) - airValue) * inside
        if (noise > 0) {
          normal.next()
          const real = value + noise * normal.first
          const imaginary = noise * normal.second
          value = modality === 'MR' ? Math.sqrt(real * real + imaginary * imaginary) : real
        }
        data[index] = Math.min(high, Math.max(low, Math.round(value)))
        if (s.surface < 0) labels.head[index] = 1
        if (s.brain) labels.brain[index] = 1
        if (s.face) labels.face[index] = 1
        if (s.ears) labels.ears[index] = 1
      }
    }
  }

  return {
    volume: {
      data,
      pixelType,
      size,
      spacing,
      // LPS: R-L and A-P negated; + 0 turns -0 into 0, which toEqual would tell apart.
      origin: [-originRas[0] + 0, -originRas[1] + 0, originRas[2] + 0],
      direction: directionRas.map((v, i) => (i < 6 ? -v : v) + 0) as Mat3,
      modality,
      headerText: [],
      source: {
        path: `<phantom ${options.contrast} ${options.orientation}${withFace ? '' : ' no face'}>`,
        format: 'nifti',
        notes: [],
      },
    },
    labels,
  }
}

function letterAxis(letter: string): { axis: 0 | 1 | 2; sign: 1 | -1 } {
  switch (letter) {
    case 'R':
      return { axis: 0, sign: 1 }
    case 'L':
      return { axis: 0, sign: -1 }
    case 'A':
      return { axis: 1, sign: 1 }
    case 'P':
      return { axis: 1, sign: -1 }
    case 'S':
      return { axis: 2, sign: 1 }
    default:
      return { axis: 2, sign: -1 }
  }
}

/** Pairs of independent standard normals (Marsaglia's polar method) from a seeded mulberry32. */
function normalPairs(seed: number): { first: number; second: number; next(): void } {
  let state = seed >>> 0
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const pair = {
    first: 0,
    second: 0,
    next(): void {
      let u = 0
      let v = 0
      let r = 0
      do {
        u = 2 * uniform() - 1
        v = 2 * uniform() - 1
        r = u * u + v * v
      } while (r >= 1 || r === 0)
      const scale = Math.sqrt((-2 * Math.log(r)) / r)
      pair.first = u * scale
      pair.second = v * scale
    },
  }
  return pair
}

// The point, the shapes and what the model says of the point are all objects, the first and last
// reused for every voxel: V8 boxes each number passed to or returned from a call it does not
// inline, which here would cost more than the arithmetic.

/** RAS position in mm; ax = |x|, since the model is symmetric. */
interface Point {
  x: number
  ax: number
  y: number
  z: number
}

interface Sample {
  tissue: number
  /** Signed distance (mm) to the outer surface: skin, or the brain when there is no face. */
  surface: number
  brain: boolean
  face: boolean
  ears: boolean
}

/** An axis-aligned ellipsoid; x is measured from the midline, so one off it is a mirrored pair. */
interface Ellipsoid {
  cx: number
  cy: number
  cz: number
  /** Reciprocal radii. */
  ix: number
  iy: number
  iz: number
  rmin: number
}

function ellipsoid(cx: number, cy: number, cz: number, rx: number, ry: number, rz: number): Ellipsoid {
  return { cx, cy, cz, ix: 1 / rx, iy: 1 / ry, iz: 1 / rz, rmin: Math.min(rx, ry, rz) }
}

/** A capsule around a segment in the midline plane, from (y0, z0) to (y1, z1). */
interface Capsule {
  y0: number
  z0: number
  dy: number
  dz: number
  radius: number
}

function capsule(y0: number, z0: number, y1: number, z1: number, radius: number): Capsule {
  return { y0, z0, dy: y1 - y0, dz: z1 - z0, radius }
}

// ---- Shapes ------------------------------------------------------------------------------------

const BRAIN = ellipsoid(0, -5, 25, 61, 76, 64)
const BRAINSTEM = capsule(-10, 5, -25, -45, 11)
const CORD = capsule(-25, -45, -28, -160, 5)
const VENTRICLES = ellipsoid(10, -2, 32, 6, 28, 11)
/** An elliptic cylinder: infinite along S-I. */
const NECK = ellipsoid(0, -12, 0, 56, 52, Infinity)

const MIDFACE = ellipsoid(0, 34, -5, 66, 52, 40)
const JAW = ellipsoid(0, 28, -45, 54, 58, 32)
const UPPER_JAW = ellipsoid(0, 68, -32, 34, 22, 16)
const CHIN = ellipsoid(0, 72, -66, 22, 14, 12)
const BROW = ellipsoid(0, 74, 20, 44, 12, 9)
const CHEEKBONES = ellipsoid(46, 62, -4, 18, 16, 14)
const CHEEKS = ellipsoid(40, 58, -22, 22, 20, 20)
const EYE_SOCKETS = ellipsoid(32, 88, 6, 17, 10, 12)
const EYES = ellipsoid(32, 70, 3, 12, 12, 12)
const ORBITS = ellipsoid(32, 64, 3, 16, 16, 13)
/** Along and across the dorsum, which runs 29 degrees forward of vertical from (0, 92, -6). */
const NOSE_DORSUM = ellipsoid(0, 0, 0, 7, 9, 22)
const NOSE_TILT_COS = 1 / Math.hypot(1, 0.55)
const NOSE_TILT_SIN = 0.55 * NOSE_TILT_COS
const NOSE_TIP = ellipsoid(0, 100, -22, 8, 8, 8)
const NOSE_WINGS = ellipsoid(11, 92, -24, 7, 8, 6)
const NOSTRILS = ellipsoid(6, 97, -30, 3, 5, 2.5)
const UPPER_LIP = ellipsoid(0, 86, -40, 22, 7, 6)
const LOWER_LIP = ellipsoid(0, 84, -51, 20, 7, 6)
const MOUTH = ellipsoid(0, 94, -45.5, 22, 10, 1.5)
/** In the pinna's own frame, turned 25 degrees about S-I so that its back edge stands out. */
const PINNA = ellipsoid(0, 0, 2, 4.5, 15, 26)
const CONCHA = ellipsoid(5, 2, -1, 4, 10, 17)
const EAR_COS = Math.cos((25 * Math.PI) / 180)
const EAR_SIN = Math.sin((25 * Math.PI) / 180)
const EAR_ROOTS = ellipsoid(64, -6, 2, 8, 9, 20)

const NASAL_CAVITIES = ellipsoid(7, 60, -10, 6, 22, 15)
const MAXILLARY_SINUSES = ellipsoid(28, 52, -20, 13, 15, 12)
const NASOPHARYNX = ellipsoid(0, 22, -12, 9, 14, 9)

/** 1 / |(0.45, -1)|, to make the sloping fossa floor a true distance. */
const FLOOR_NORM = 1 / Math.hypot(0.45, 1)

// ---- Sampling ----------------------------------------------------------------------------------

function sampleBrainOnly(p: Point, s: Sample): void {
  const b = Math.max(brainSd(p), FORAMEN_MAGNUM_Z - p.z)
  s.tissue = b < PARTIAL_VOLUME_REACH ? brainTissue(p, b) : AIR
  s.surface = b
  s.brain = b < 0
  s.face = false
  s.ears = false
}

function sampleHead(p: Point, s: Sample): void {
  const { ax, y, z } = p
  s.face = false
  s.ears = false
  s.brain = false
  // Most of the field of view is air well clear of the head: rule that out from cheap bounds
  // before any distance is computed, then again once the scalp is known. The brainstem and cord
  // lie inside the neck, and their unions and the neck's pull the scalp out by 7.5 mm at most.
  const faceGap = Math.max(ax - 66, -30 - y, y - 110, z - 35, -78 - z)
  const earGap = Math.max(56 - ax, ax - 81, -24 - y, y - 8, z - 28, -24 - z)
  const clearOfFace = faceGap > FACE_REACH && earGap > EAR_REACH
  if (clearOfFace && Math.min(ellipsoidBound(p, BRAIN) - SCALP_OUTER, Math.max(ellipsoidBound(p, NECK), z + 30)) - 7.5 > FACE_REACH) {
    s.tissue = AIR
    s.surface = PARTIAL_VOLUME_REACH
    return
  }
  const b = brainSd(p)
  if (b < SKULL_OUTER) {
    s.tissue = b < 0 ? brainTissue(p, b) : b < CSF_OUTER ? CSF : b < 5 || b > 7.5 ? BONE : MARROW
    s.surface = b - SCALP_OUTER
    s.brain = b < 0 && z > FORAMEN_MAGNUM_Z
    return
  }
  // The neck fades out under the skull.
  const scalp = smin(b - SCALP_OUTER, smax(ellipsoidSd(p, NECK), z + 30, 10), 20)
  if (clearOfFace && scalp > FACE_REACH) {
    s.tissue = AIR
    s.surface = scalp
    return
  }
  // Deep tissue is classified without the exact depth, which matters only within 16 mm of the
  // skin; further forward the eye sockets and mouth carve the skin inwards.
  const bare = scalp < -17 && y < 60 ? scalp : faceSd(p, scalp, faceGap)
  // The ear's smoothing and Quilez's estimate can reach 3 mm inside its bounding box.
  const ear = earGap < bare + 6 ? earSd(p) : Infinity
  const h = smin(bare, ear, 3)
  s.surface = h
  if (h > PARTIAL_VOLUME_REACH) {
    s.tissue = AIR
    return
  }
  s.tissue = softTissue(p, h, ear)
  if (h >= 0) return
  if (bare >= 0) s.ears = true
  else s.face = y > 20 && z < 20 && z > -80 && b > FACE_BRAIN_MARGIN
}

// ---- Brain -------------------------------------------------------------------------------------

/** The brain, brainstem and cord. */
function brainSd(p: Point): number {
  const { ax, y, z } = p
  let d = ellipsoidSd(p, BRAIN)
  // Middle and posterior fossae: the temporal lobes and cerebellum sit lower towards the back.
  d = smax(d, (0.45 * y - 22 - z) * FLOOR_NORM, 8)
  // Anterior fossa: in front of the temporal poles only the frontal lobes, above the orbits.
  d = smax(d, Math.min(28 - z, y - 38), 8)
  // Brainstem and cord, each skipped where the gap to its bounding box shows it cannot reach d.
  if (Math.max(ax, y + 10, -25 - y, z - 5, -45 - z) - 11 < d + 6) d = smin(d, capsuleSd(p, BRAINSTEM), 6)
  if (Math.max(ax, y + 25, -28 - y, z + 45, -160 - z) - 5 < d + 4) d = smin(d, capsuleSd(p, CORD), 4)
  return d
}

/** Grey matter over white, with sulci and lateral ventricles; b is the brain SDF. */
function brainTissue(p: Point, b: number): number {
  if (ellipsoidSd(p, VENTRICLES) < 0) return CSF
  const folds = Math.sin(0.23 * p.x + 0.4) * Math.sin(0.21 * p.y + 1.1) * Math.sin(0.25 * p.z + 2.3)
  if (b > -9 && folds > 0.55) return CSF
  return b > -4 - 2.5 * folds ? GREY : WHITE
}

// ---- Head surface ------------------------------------------------------------------------------

/** The skin with the face added to the scalp and neck; faceGap bounds the distance to the face. */
function faceSd(p: Point, scalp: number, faceGap: number): number {
  if (faceGap > FACE_REACH) return scalp
  const { ax, y, z } = p
  let h = addEllipsoid(scalp, p, MIDFACE, 12)
  h = addEllipsoid(h, p, JAW, 12)
  // The rest lies in the box ax < 64, 38 < y < 110, -78 < z < 31, and has no smoothing over
  // 12 mm; well outside the skin, beyond that reach, it cannot change h.
  if (h > PARTIAL_VOLUME_REACH && Math.max(ax - 64, 38 - y, y - 110, z - 31, -78 - z) >= h + 12) return h
  h = addEllipsoid(h, p, UPPER_JAW, 10)
  h = addEllipsoid(h, p, CHIN, 12)
  h = addEllipsoid(h, p, BROW, 12)
  h = addEllipsoid(h, p, CHEEKBONES, 8)
  h = addEllipsoid(h, p, CHEEKS, 12)
  // Eye sockets, then the closed eyes (lids over the globe) inside them.
  h = carveEllipsoid(h, p, EYE_SOCKETS, 4)
  h = addEllipsoid(h, p, EYES, 2)
  // The nose lies within 31 mm of (0, 94, -10), counting its own smoothing.
  const dy = y - 94
  const dz = z + 10
  if (Math.sqrt(ax * ax + dy * dy + dz * dz) - 31 < h + 5) h = smin(h, noseSd(p), 5)
  h = addEllipsoid(h, p, UPPER_LIP, 6)
  h = addEllipsoid(h, p, LOWER_LIP, 6)
  return carveEllipsoid(h, p, MOUTH, 1)
}

/** Dorsum, tip and wings, with the nostrils underneath. */
function noseSd(p: Point): number {
  const y = p.y - 92
  const z = p.z + 6
  let nose = ellipsoidSdAt(p.ax, y * NOSE_TILT_COS + z * NOSE_TILT_SIN, y * NOSE_TILT_SIN - z * NOSE_TILT_COS, NOSE_DORSUM)
  nose = addEllipsoid(nose, p, NOSE_TIP, 5)
  nose = addEllipsoid(nose, p, NOSE_WINGS, 4)
  return carveEllipsoid(nose, p, NOSTRILS, 1.5)
}

/** The pinna on a root that joins it to the scalp, with the concha: the bowl inside the rim. */
function earSd(p: Point): number {
  const x = p.ax - 70
  const y = p.y + 8
  const out = x * EAR_COS - y * EAR_SIN
  const along = x * EAR_SIN + y * EAR_COS
  const pinna = addEllipsoid(ellipsoidSdAt(out, along, p.z, PINNA), p, EAR_ROOTS, 4)
  return smax(pinna, -ellipsoidSdAt(out, along, p.z, CONCHA), 1.5)
}

// ---- Inside the head ---------------------------------------------------------------------------

/** Tissue under the skin, outside the skull; h is the skin SDF, ear the pinna SDF. */
function softTissue(p: Point, h: number, ear: number): number {
  if (h > -2) return SKIN
  if (p.y > 48) {
    if (ellipsoidSd(p, EYES) < 0) return VITREOUS
    if (ellipsoidSd(p, ORBITS) < 0) return FAT
  }
  if (isTooth(p)) return TEETH
  if (isAirway(p)) return AIR
  if (isBone(p, h)) return BONE
  if (ear < 0) return MUSCLE
  return h > -5 ? FAT : MUSCLE
}

function isTooth({ ax, y, z }: Point): boolean {
  if (z < -53 || z > -39 || y < 42) return false
  const r = Math.sqrt((ax / 28) ** 2 + ((y - 42) / 38) ** 2)
  return r < 1 && r > 0.75
}

function isAirway(p: Point): boolean {
  const { ax, y, z } = p
  // Pharynx and trachea.
  if (z < -8 && z > -110 && ax * ax + (y - 14) ** 2 < 49) return true
  return (
    y > 8 &&
    z > -32 &&
    z < 6 &&
    (ellipsoidSd(p, NASAL_CAVITIES) < 0 || ellipsoidSd(p, MAXILLARY_SINUSES) < 0 || ellipsoidSd(p, NASOPHARYNX) < 0)
  )
}

function isBone({ ax, y, z }: Point, h: number): boolean {
  // Vertebral bodies, with discs between them.
  if (z < -48 && ax * ax + (y + 6) ** 2 < 121 && (z + 300) % 18 > 4) return true
  if (h > -7 || h < -15) return false
  // Maxilla and zygoma under the cheeks, leaving the nose cartilage.
  if (y > 40 && z > -38 && z < 16 && h < -9 && !(ax < 14 && y > 84)) return true
  // Mandible: body under the teeth, rami up towards the ears.
  return y > 5 && ((z > -80 && z < -54) || (y < 25 && ax > 35 && z < -15 && z > -54))
}

// ---- Signed distances (mm, negative inside) ----------------------------------------------------

/** Quilez's ellipsoid estimate: exact on the axes, close elsewhere near the surface. */
function ellipsoidSd(p: Point, e: Ellipsoid): number {
  const px = (p.ax - e.cx) * e.ix
  const py = (p.y - e.cy) * e.iy
  const pz = (p.z - e.cz) * e.iz
  const k0 = Math.sqrt(px * px + py * py + pz * pz)
  const qx = px * e.ix
  const qy = py * e.iy
  const qz = pz * e.iz
  const k1 = Math.sqrt(qx * qx + qy * qy + qz * qz)
  return k1 === 0 ? -e.rmin : (k0 * (k0 - 1)) / k1
}

/** The same, for a point given in a frame turned to the ellipsoid's axes. */
function ellipsoidSdAt(x: number, y: number, z: number, e: Ellipsoid): number {
  const px = (x - e.cx) * e.ix
  const py = (y - e.cy) * e.iy
  const pz = (z - e.cz) * e.iz
  const k0 = Math.sqrt(px * px + py * py + pz * pz)
  const qx = px * e.ix
  const qy = py * e.iy
  const qz = pz * e.iz
  const k1 = Math.sqrt(qx * qx + qy * qy + qz * qz)
  return k1 === 0 ? -e.rmin : (k0 * (k0 - 1)) / k1
}

/**
 * (k0 - 1) * min radius: never above ellipsoidSd outside the ellipsoid, and cheaper. Where it is
 * already too far to change a union or a cut, the full distance is skipped; the result is the same.
 */
function ellipsoidBound(p: Point, e: Ellipsoid): number {
  const px = (p.ax - e.cx) * e.ix
  const py = (p.y - e.cy) * e.iy
  const pz = (p.z - e.cz) * e.iz
  return (Math.sqrt(px * px + py * py + pz * pz) - 1) * e.rmin
}

/** smin(h, ellipsoid, k). */
function addEllipsoid(h: number, p: Point, e: Ellipsoid, k: number): number {
  const bound = ellipsoidBound(p, e)
  return bound > 0 && bound >= h + k ? h : smin(h, ellipsoidSd(p, e), k)
}

/** smax(h, -ellipsoid, k): the ellipsoid cut out of the shape. */
function carveEllipsoid(h: number, p: Point, e: Ellipsoid, k: number): number {
  const bound = ellipsoidBound(p, e)
  return bound > 0 && bound >= k - h ? h : smax(h, -ellipsoidSd(p, e), k)
}

function capsuleSd(p: Point, c: Capsule): number {
  const y = p.y - c.y0
  const z = p.z - c.z0
  const t = Math.min(1, Math.max(0, (y * c.dy + z * c.dz) / (c.dy * c.dy + c.dz * c.dz)))
  const ey = y - c.dy * t
  const ez = z - c.dz * t
  return Math.sqrt(p.ax * p.ax + ey * ey + ez * ez) - c.radius
}

/** Polynomial smooth minimum: a union whose seam is rounded over about k mm. */
function smin(a: number, b: number, k: number): number {
  const h = Math.max(k - Math.abs(a - b), 0) / k
  return Math.min(a, b) - h * h * k * 0.25
}

function smax(a: number, b: number, k: number): number {
  const h = Math.max(k - Math.abs(a - b), 0) / k
  return Math.max(a, b) + h * h * k * 0.25
}
