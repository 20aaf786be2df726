/**
 * What is in an input folder and what to do with each file: deface it, scrub it (JSON), copy it
 * byte for byte, or refuse it. Pure listing: nothing is read beyond file names, the first bytes
 * of files of unknown kind (to catch DICOM) and the headers of detached volumes (to find their
 * data files). Paths are relative to the input root, with '/' separators, sorted by code unit so
 * that every run and every shard sees the same order.
 */
import { open, readFile, readdir, realpath, stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { formatOfPath } from '../io/format.js'
import { bidsSuffix, isBidsAnatomicalImage, isVolumePath, sidecarPathOf, subjectOf } from './bids.js'
import { matchesAny } from './glob.js'

export type Layout = 'bids' | 'plain'

export interface UnitImage {
  /** Input path relative to the dataset root; the output has the same relative path. */
  input: string
  /** The sidecar of exactly this image, when the input has one. */
  sidecar?: string
}

/** Work that stays together: one image, or a session folder whose images share the --mask-from image's mask. */
export interface WorkUnit {
  /** What shards are assigned by: the image path, or the folder of a --mask-from group. */
  key: string
  /** With --mask-from, the reference image comes first. */
  images: UnitImage[]
  /** The image whose labels the others may use (--mask-from), when the group has one. */
  reference?: string
}

export interface Refusal {
  input: string
  error: string
}

export interface DatasetPlan {
  layout: Layout
  units: WorkUnit[]
  /** Files copied unchanged (JSON files other than owned sidecars are scrubbed, and copied unchanged only when nothing needs removing). */
  copies: string[]
  /** Top-level dataset_description.json, which gets a GeneratedBy entry. */
  datasetDescription?: string
  /** Files neither defaced nor copied, with the reason (DICOM files). */
  refused: Refusal[]
  /** How many files were left out on purpose: .git, excluded patterns, unselected subjects, data files of detached headers. */
  skipped: { git: number; excluded: number; unselectedSubjects: number; detachedData: number; temporaries: number }
}

export interface DiscoverOptions {
  /** 'auto' (default): BIDS when the root has dataset_description.json or sub-* folders. */
  layout?: Layout | 'auto'
  include?: RegExp[]
  exclude?: RegExp[]
  /** BIDS subject labels without `sub-`; empty or absent means all subjects. */
  participants?: string[]
  /** BIDS suffix of the image whose mask the other images of its folder reuse (e.g. T1w). */
  maskFrom?: string
}

/** Byte-order comparison, the same on every machine and locale. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function isUnfaceTemporary(name: string): boolean {
  return /^\..+\.unface-/.test(name) || name.startsWith('.unface-probe-')
}

const TEXT_EXTENSIONS = /\.(json|tsv|csv|txt|md|rst|bval|bvec|html|htm|png|jpg|jpeg|svg|pdf|yml|yaml|cff|edf|bdf|vhdr|vmrk|eeg|set|fdt|gz|zip|tar|npy|mat|h5|nii)$/i
const DICOM_EXTENSIONS = /\.(dcm|ima|dicom)$/i

export async function discoverDataset(root: string, options: DiscoverOptions = {}): Promise<DatasetPlan> {
  const skipped = { git: 0, excluded: 0, unselectedSubjects: 0, detachedData: 0, temporaries: 0 }
  const entries = await topLevelNames(root)
  const layout = options.layout === undefined || options.layout === 'auto' ? detectLayout(entries) : options.layout
  const participants = new Set((options.participants ?? []).map((p) => p.replace(/^sub-/, '')))
  const include = options.include ?? []
  const exclude = options.exclude ?? []

  const files: string[] = []
  const seen = new Set<string>()
  await walk(root, '', files, skipped, seen, (relDir) => {
    if (layout !== 'bids' || participants.size === 0 || relDir.includes('/')) return true
    const subject = subjectOf(relDir)
    if (subject === undefined || participants.has(subject)) return true
    skipped.unselectedSubjects++
    return false
  })
  const kept = files.filter((f) => {
    if (exclude.length > 0 && matchesAny(f, exclude)) {
      skipped.excluded++
      return false
    }
    return true
  })
  const present = new Set(kept)

  const images = kept.filter((f) => {
    if (layout === 'plain') return isVolumePath(f)
    return isBidsAnatomicalImage(f) || (include.length > 0 && isVolumePath(f) && matchesAny(f, include))
  })
  const imageSet = new Set(images)

  // The voxels of a detached header's image live in its data file: never copy those unchanged.
  const detachedData = new Set<string>()
  for (const image of images) {
    if (formatOfPath(image)?.detached !== true) continue
    for (const data of await detachedDataFiles(root, image)) {
      if (present.has(data) && !imageSet.has(data)) detachedData.add(data)
    }
  }
  skipped.detachedData = detachedData.size

  const owned = new Set<string>()
  const unitImages: UnitImage[] = images.map((input) => {
    const sidecar = sidecarPathOf(input)
    if (present.has(sidecar)) {
      owned.add(sidecar)
      return { input, sidecar }
    }
    return { input }
  })

  const copies: string[] = []
  const refused: Refusal[] = []
  let datasetDescription: string | undefined
  for (const file of kept) {
    if (imageSet.has(file) || owned.has(file) || detachedData.has(file)) continue
    if (layout === 'bids' && file === 'dataset_description.json') {
      datasetDescription = file
      continue
    }
    if (await isDicomFile(join(root, file))) {
      refused.push({
        input: file,
        error: 'is a DICOM file: not copied, because dataset mode defaces NIfTI, NRRD and MetaImage only (convert it, or leave it out with --exclude)',
      })
      continue
    }
    copies.push(file)
  }

  return {
    layout,
    units: groupUnits(unitImages, options.maskFrom),
    copies,
    ...(datasetDescription === undefined ? {} : { datasetDescription }),
    refused,
    skipped,
  }
}

function detectLayout(topLevel: string[]): Layout {
  return topLevel.includes('dataset_description.json') || topLevel.some((n) => n.startsWith('sub-')) ? 'bids' : 'plain'
}

async function topLevelNames(root: string): Promise<string[]> {
  return (await readdir(root)).sort(byCodeUnit)
}

async function walk(
  root: string,
  relDir: string,
  out: string[],
  skipped: DatasetPlan['skipped'],
  seen: Set<string>,
  enterDirectory: (relDir: string) => boolean,
): Promise<void> {
  const dir = relDir === '' ? root : join(root, relDir)
  // A symbolic link back up the tree must not make the walk endless.
  const real = await realpath(dir)
  if (seen.has(real)) return
  seen.add(real)
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => byCodeUnit(a.name, b.name))
  for (const entry of entries) {
    const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`
    if (entry.name === '.git') {
      skipped.git++
      continue
    }
    if (isUnfaceTemporary(entry.name)) {
      skipped.temporaries++
      continue
    }
    let isDirectory = entry.isDirectory()
    let isFile = entry.isFile()
    if (entry.isSymbolicLink()) {
      const target = await stat(join(dir, entry.name)).catch(() => undefined)
      isDirectory = target?.isDirectory() === true
      isFile = target?.isFile() === true
    }
    if (isDirectory) {
      if (enterDirectory(rel)) await walk(root, rel, out, skipped, seen, enterDirectory)
    } else if (isFile) {
      out.push(rel)
    }
  }
}

/** Data files named by a .nhdr (`data file:`) or .mhd (`ElementDataFile =`), relative to the root. */
export async function detachedDataFiles(root: string, relHeader: string): Promise<string[]> {
  const text = await readFile(join(root, relHeader), 'latin1').catch(() => '')
  const headerDir = posix.dirname(relHeader)
  const names: string[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const nrrd = /^data ?file:\s*(.+?)\s*$/i.exec(line)
    const meta = /^ElementDataFile\s*=\s*(.+?)\s*$/.exec(line)
    const value = nrrd?.[1] ?? meta?.[1]
    if (value === undefined) continue
    if (/^LIST(\s|$)/.test(value)) {
      names.push(...lines.slice(i + 1).map((l) => l.trim()).filter((l) => l !== ''))
      break
    }
    if (value !== 'LOCAL') names.push(value.split(/\s+/)[0] as string)
  }
  return names.map((n) => posix.normalize(headerDir === '.' ? n : `${headerDir}/${n}`))
}

async function isDicomFile(path: string): Promise<boolean> {
  if (DICOM_EXTENSIONS.test(path)) return true
  if (TEXT_EXTENSIONS.test(path)) return false
  const handle = await open(path, 'r').catch(() => undefined)
  if (handle === undefined) return false
  try {
    const head = Buffer.alloc(132)
    const { bytesRead } = await handle.read(head, 0, 132, 0)
    return bytesRead === 132 && head.toString('latin1', 128, 132) === 'DICM'
  } finally {
    await handle.close()
  }
}

/** With --mask-from, the images of one folder that holds the reference suffix go together, reference first. */
export function groupUnits(images: UnitImage[], maskFrom: string | undefined): WorkUnit[] {
  if (maskFrom === undefined) return images.map((image) => ({ key: image.input, images: [image] }))
  const byFolder = new Map<string, UnitImage[]>()
  for (const image of images) {
    const folder = posix.dirname(image.input)
    const list = byFolder.get(folder) ?? []
    list.push(image)
    byFolder.set(folder, list)
  }
  const units: WorkUnit[] = []
  for (const [folder, list] of byFolder) {
    const reference = list.find((image) => bidsSuffix(image.input) === maskFrom)
    if (reference === undefined || list.length === 1) {
      units.push(...list.map((image) => ({ key: image.input, images: [image] })))
      continue
    }
    units.push({ key: `${folder}/`, reference: reference.input, images: [reference, ...list.filter((image) => image !== reference)] })
  }
  return units.sort((a, b) => byCodeUnit(a.key, b.key))
}
