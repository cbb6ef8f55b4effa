/**
 * Preload (`--import ./bench/mem-probe.mjs`) for bench/upload-rss.ts and the sse phase: appends one
 * JSON line of process.memoryUsage() every MEM_PROBE_MS (default 50) ms to MEM_PROBE_FILE.
 * Measurement only. Plain JavaScript: a TypeScript preload would load Node's type stripper into the
 * process measured (~24 MiB that keyvalet itself, started from its compile cache, does not hold).
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import { isMainThread } from 'node:worker_threads'

const file = process.env.MEM_PROBE_FILE
if (file !== undefined && file !== '' && isMainThread) {
  const fd = openSync(file, 'a')
  const t0 = performance.now()
  const sample = () => {
    const m = process.memoryUsage()
    writeSync(fd, `${JSON.stringify({ t: Math.round(performance.now() - t0), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers })}\n`)
  }
  setInterval(sample, Number(process.env.MEM_PROBE_MS ?? 50)).unref()
  process.once('exit', () => { sample(); closeSync(fd) })
}
