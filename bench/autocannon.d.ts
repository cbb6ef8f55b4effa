// Minimal local types for autocannon@9 (it ships none): only what bench/load.ts uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  interface Options {
    url: string
    method?: string
    headers?: Record<string, string>
    connections?: number
    pipelining?: number
    duration?: number
    overallRate?: number
    timeout?: number
    workers?: number
    /** Per-request overrides (path may be absolute-form, for a forward proxy). */
    requests?: { method?: string; path?: string; headers?: Record<string, string> }[]
  }

  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p97_5: number
    p99: number
    p99_9: number
    totalCount?: number
    sent?: number
  }

  interface Result {
    duration: number
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    '2xx': number
    statusCodeStats: Record<string, { count: number }>
    latency: Histogram
    requests: Histogram
    throughput: Histogram
  }

  interface Instance extends EventEmitter {
    stop(): void
  }

  function autocannon(opts: Options, cb: (err: Error | null, result: Result) => void): Instance

  export default autocannon
  export type { Options, Result, Instance, Histogram }
}
