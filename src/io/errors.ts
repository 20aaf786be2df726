/**
 * Exit codes are part of the CLI contract (README, `unface --help`).
 */
export const ExitCode = {
  ok: 0,
  /** Bad input, unwritable output, or a failure while processing. */
  error: 1,
  /** The command line itself is wrong. */
  usage: 2,
  /** The pipeline could not confirm that the face is gone; nothing was released. */
  verificationFailed: 3,
} as const

/**
 * An error the user can act on: one line that names the file and the problem. The CLI prints
 * `message` alone (no stack unless --debug).
 */
export class UnfaceError extends Error {
  readonly file: string | undefined
  readonly exitCode: number

  constructor(message: string, options: { file?: string; exitCode?: number; cause?: unknown } = {}) {
    super(options.file === undefined ? message : `${options.file}: ${message}`, { cause: options.cause })
    this.name = 'UnfaceError'
    this.file = options.file
    this.exitCode = options.exitCode ?? ExitCode.error
  }
}

export class UsageError extends UnfaceError {
  constructor(message: string) {
    super(message, { exitCode: ExitCode.usage })
    this.name = 'UsageError'
  }
}
