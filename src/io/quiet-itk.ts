/**
 * itk-wasm writes ITK warnings and "Exception while running pipeline" to the console. A CLI
 * whose errors are one line cannot let that through, so calls into it are wrapped, and what it
 * said is kept for --debug.
 */
let captured: string[] = []

export async function quietly<T>(call: () => Promise<T>): Promise<T> {
  const saved = { log: console.log, warn: console.warn, error: console.error, info: console.info }
  const keep = (...args: unknown[]) => {
    captured.push(args.map(String).join(' '))
    if (captured.length > 200) captured = captured.slice(-100)
  }
  console.log = keep
  console.warn = keep
  console.error = keep
  console.info = keep
  try {
    return await call()
  } finally {
    Object.assign(console, saved)
  }
}

/** What itk-wasm printed most recently, for --debug. */
export function itkConsoleOutput(): string[] {
  return [...captured]
}
