/**
 * The little of BIDS that defacing a dataset needs: which images are anatomical, what their
 * suffix is, which sidecar belongs to an image, which subject a path belongs to, and which tables give visit dates.
 */
import { formatOfPath, stripVolumeExtension } from '../io/format.js'

/**
 * Suffixes of BIDS anatomical images (non-parametric, parametric maps and file collections):
 * every one of them can show the face. Images in anat/ with another suffix (for example
 * `defacemask`) are copied unchanged.
 */
export const ANATOMICAL_SUFFIXES: readonly string[] = [
  // non-parametric
  'T1w', 'T2w', 'PDw', 'T2starw', 'FLAIR', 'inplaneT1', 'inplaneT2', 'PDT2', 'angio',
  // deprecated but still found in the wild
  'T2star', 'FLASH', 'PD',
  // parametric maps
  'T1map', 'T2map', 'T2starmap', 'R1map', 'R2map', 'R2starmap', 'PDmap', 'MTRmap', 'MTsat', 'UNIT1',
  'T1rho', 'MWFmap', 'MTVmap', 'Chimap', 'S0map', 'M0map',
  // file collections
  'MESE', 'MEGRE', 'VFA', 'IRT1', 'MP2RAGE', 'MPM', 'MTS', 'MTR',
]

const ANATOMICAL = new Set(ANATOMICAL_SUFFIXES)

/** The BIDS suffix: the part of the file name after the last underscore, before the extension. */
export function bidsSuffix(relPath: string): string {
  const name = basenameOf(stripVolumeExtension(relPath))
  const underscore = name.lastIndexOf('_')
  return underscore < 0 ? name : name.slice(underscore + 1)
}

/** sub-*\/[ses-*\/]anat/*_<anatomical suffix>.<volume extension> */
export function isBidsAnatomicalImage(relPath: string): boolean {
  if (formatOfPath(relPath) === undefined) return false
  const parts = relPath.split('/')
  const subject = parts[0] ?? ''
  if (!subject.startsWith('sub-')) return false
  const anatAt = parts.length === 3 ? 1 : parts.length === 4 && (parts[1] ?? '').startsWith('ses-') ? 2 : -1
  if (anatAt < 0 || parts[anatAt] !== 'anat') return false
  return ANATOMICAL.has(bidsSuffix(relPath))
}

/** The subject label of a path inside a BIDS dataset (without `sub-`), if it is under sub-*. */
export function subjectOf(relPath: string): string | undefined {
  const first = relPath.split('/')[0] ?? ''
  return first.startsWith('sub-') ? first.slice(4) : undefined
}

/** The sidecar that belongs to exactly this image: same folder, same name, .json. */
export function sidecarPathOf(relImage: string): string {
  return `${stripVolumeExtension(relImage)}.json`
}

/**
 * Whether a BIDS scans or sessions table (`*_scans.tsv`, `*_sessions.tsv`) gives the date of a
 * visit: an `acq_time` column with a value other than `n/a` in some row. Such tables are copied
 * unchanged, so a run says which ones still hold dates.
 */
export function holdsVisitDates(relPath: string, text: string): boolean {
  if (!/(^|\/)[^/]*_(scans|sessions)\.tsv$/.test(relPath)) return false
  const [header, ...rows] = text.split(/\r?\n/)
  const column = (header ?? '').split('\t').indexOf('acq_time')
  if (column < 0) return false
  return rows.some((row) => {
    const value = (row.split('\t')[column] ?? '').trim()
    return value !== '' && value !== 'n/a'
  })
}

export function isVolumePath(relPath: string): boolean {
  return formatOfPath(relPath) !== undefined
}

function basenameOf(path: string): string {
  const slash = path.lastIndexOf('/')
  return slash < 0 ? path : path.slice(slash + 1)
}
