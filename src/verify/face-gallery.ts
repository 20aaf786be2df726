/**
 * The face gallery that ships with unface (models/face-gallery.json): the face descriptors of the
 * original skin renders of the real heads the face check was calibrated on, one per head and view,
 * and the calibration figures (face score threshold, match distance) the check uses by default.
 *
 * It is what "identified" is measured against: a defaced render is matched to its original when
 * its descriptor is nearer the original's than any other head's in the gallery at the same view
 * (see face-verdict.ts). Built by scripts/build-face-gallery.ts.
 *
 * Descriptors are stored as int8 with one scale per descriptor (value = byte · scale), base64
 * encoded: 172 characters instead of ~800 for 128 decimals, and a distance error of about 0.005,
 * small beside the distances that matter (0.2 to 0.6).
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { ViewAngle } from './render-surface.js'

export const GALLERY_FORMAT = 'unface-face-gallery/1'

/** src/verify or dist/verify, two folders below the package root. */
export const DEFAULT_GALLERY_PATH = fileURLToPath(new URL('../../models/face-gallery.json', import.meta.url))

export interface GalleryView extends ViewAngle {
  /** The detector's score for the face the descriptor was taken from. */
  score: number
  descriptor: Float32Array
}

export interface GalleryHead {
  /** The scan the renders were made from (its file or folder name). */
  id: string
  /** Scans of one person share this; a head is never its own decoy. */
  person: string
  views: GalleryView[]
}

export interface FaceCalibration {
  /** Detector score at or above which a view shows a face. */
  faceScoreThreshold: number
  /** A defaced view nearer its original than this (and than every other head) is identified. */
  maxMatchDistance: number
  /** Anything else the build recorded: rates, distances, what they were measured on. */
  [figure: string]: unknown
}

export interface FaceGallery {
  format: typeof GALLERY_FORMAT
  /** How and from what the gallery was built. */
  builtFrom: Record<string, unknown>
  calibration: FaceCalibration
  heads: GalleryHead[]
}

interface StoredView extends ViewAngle {
  score: number
  scale: number
  /** base64 of 128 signed bytes. */
  descriptor: string
}

interface StoredGallery extends Omit<FaceGallery, 'heads'> {
  heads: Array<Omit<GalleryHead, 'views'> & { views: StoredView[] }>
}

export function encodeDescriptor(descriptor: ArrayLike<number>): { scale: number; descriptor: string } {
  let max = 0
  for (let i = 0; i < descriptor.length; i++) max = Math.max(max, Math.abs(descriptor[i] as number))
  const scale = max > 0 ? max / 127 : 1
  const bytes = new Int8Array(descriptor.length)
  for (let i = 0; i < descriptor.length; i++) bytes[i] = Math.round((descriptor[i] as number) / scale)
  return { scale: Number(scale.toPrecision(6)), descriptor: Buffer.from(bytes.buffer).toString('base64') }
}

export function decodeDescriptor(scale: number, encoded: string): Float32Array {
  const buffer = Buffer.from(encoded, 'base64')
  const bytes = new Int8Array(buffer.buffer, buffer.byteOffset, buffer.length)
  return Float32Array.from(bytes, (b) => b * scale)
}

/** The gallery as JSON text, descriptors encoded. */
export function serializeGallery(gallery: FaceGallery): string {
  const stored: StoredGallery = {
    ...gallery,
    heads: gallery.heads.map((head) => ({
      ...head,
      views: head.views.map(({ yaw, pitch, score, descriptor }) => ({ yaw, pitch, score: Number(score.toFixed(4)), ...encodeDescriptor(descriptor) })),
    })),
  }
  // Readable at the top, one line per view below: the descriptors are most of the file.
  const heads = stored.heads.map((head) => `  {"id": ${JSON.stringify(head.id)}, "person": ${JSON.stringify(head.person)}, "views": [\n${head.views.map((v) => `   ${JSON.stringify(v)}`).join(',\n')}\n  ]}`)
  const top = JSON.stringify({ ...stored, heads: [] }, null, 1).replace(/"heads": \[\]\n}$/, '')
  return `${top}"heads": [\n${heads.join(',\n')}\n ]\n}\n`
}

export function parseGallery(text: string): FaceGallery {
  const stored = JSON.parse(text) as StoredGallery
  if (stored.format !== GALLERY_FORMAT) throw new Error(`not a face gallery in the ${GALLERY_FORMAT} format`)
  const { faceScoreThreshold, maxMatchDistance } = stored.calibration ?? {}
  if (typeof faceScoreThreshold !== 'number' || typeof maxMatchDistance !== 'number') throw new Error('the face gallery has no calibration')
  return {
    ...stored,
    heads: stored.heads.map((head) => ({
      ...head,
      views: head.views.map(({ yaw, pitch, score, scale, descriptor }) => ({ yaw, pitch, score, descriptor: decodeDescriptor(scale, descriptor) })),
    })),
  }
}

let shipped: Promise<FaceGallery> | undefined

/** The gallery at `path`; the one shipped with unface, read once, by default. */
export async function loadFaceGallery(path?: string): Promise<FaceGallery> {
  if (path !== undefined) return parseGallery(await readFile(path, 'utf8'))
  shipped ??= readFile(DEFAULT_GALLERY_PATH, 'utf8').then(parseGallery)
  try {
    return await shipped
  } catch (error) {
    shipped = undefined
    throw error
  }
}
