import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // itk-wasm pipelines and real volumes take seconds each on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
})
