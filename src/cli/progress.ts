/**
 * Stage-by-stage progress on an interactive terminal, and nothing at all when stderr is piped or
 * redirected, so logs and scripts see only results and errors.
 */
export interface Progress {
  stage(name: string): void
  done(): void
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { stage: () => {}, done: () => {} }
  const start = performance.now()
  let current = ''
  const draw = () => {
    const seconds = ((performance.now() - start) / 1000).toFixed(1)
    stream.write(`\r\x1b[2Kunface: ${current} … ${seconds}s`)
  }
  const timer = setInterval(draw, 100)
  timer.unref()
  return {
    stage(name) {
      current = name
      draw()
    },
    done() {
      clearInterval(timer)
      stream.write('\r\x1b[2K')
    },
  }
}
