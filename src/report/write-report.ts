/**
 * The report's output edge: REPORT_DIR/<name>.json, <name>.png and <name>.html, each written
 * atomically, so that a reviewer never opens half a page.
 */
import { basename, join } from 'node:path'
import { writeFileAtomically } from '../io/atomic-file.js'
import { stripVolumeExtension } from '../io/format.js'
import type { DefaceReport } from './deface-report.js'
import { reportPage } from './report-page.js'

export interface ReportFiles {
  json: string
  png: string
  html: string
}

export function reportFilesFor(input: string, directory: string): ReportFiles {
  const name = `${basename(stripVolumeExtension(input.replace(/[\\/]+$/, '')))}_unface`
  return { json: join(directory, `${name}.json`), png: join(directory, `${name}.png`), html: join(directory, `${name}.html`) }
}

export async function writeReport(report: DefaceReport, montagePng: Buffer, files: ReportFiles): Promise<void> {
  await writeFileAtomically(files.png, montagePng, { overwrite: true })
  await writeFileAtomically(files.json, `${JSON.stringify(report, null, 2)}\n`, { overwrite: true })
  await writeFileAtomically(files.html, reportPage(report, montagePng), { overwrite: true })
}
