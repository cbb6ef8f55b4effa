/**
 * Where does a proxy's memory go during the 1 GiB upload (or download)? Starts the bench upstream,
 * the naive proxy and keyvalet, each fresh with bench/mem-probe.mjs preloaded, runs the transfer
 * through the chosen targets and prints the peak of rss / heapUsed / external / arrayBuffers over it
 * (growth over the value just before it). Measurement tool, not part of `npm run bench`.
 *
 * Usage: node bench/upload-rss.ts [keyvalet|naive ...]
 *   env: UPLOAD_MIB (1024), RUNS (1), NODE_EXTRA (flags), DIRECTION (upload | download)
 */
import { fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Children, Managed } from './children.ts'
import { startKeyvalet } from './keyvalet.ts'
import { readRss, RssSampler } from './rss.ts'
import type { UploadJob, UploadResult } from './upload.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const MiB = 1024 * 1024
const BYTES = Number(process.env.UPLOAD_MIB ?? 1024) * MiB
const RUNS = Number(process.env.RUNS ?? 1)
const EXTRA = (process.env.NODE_EXTRA ?? '').split(' ').filter((x) => x !== '')
const DIRECTION = process.env.DIRECTION === 'download' ? 'download' : 'upload'
const which = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['naive', 'keyvalet']

const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'upload-rss-'))
const probeFlags = ['--import', join(BENCH, 'mem-probe.mjs'), ...EXTRA]

interface Sample { t: number; rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number }
const readSamples = (file: string): Sample[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Sample)

async function uploadOnce(url: string, headers: Record<string, string>): Promise<UploadResult> {
  const worker = children.fork('upload', join(BENCH, 'upload.ts'))
  worker.expectExit()
  const done = worker.waitForMessage<{ event: string; result?: UploadResult; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), 180_000)
  worker.child.send((DIRECTION === 'upload' ? { url, headers, bytes: BYTES, chunkBytes: 256 * 1024 } : { url: url.replace(/\/upload$/, `/items/download/${BYTES}`), headers, bytes: BYTES, chunkBytes: 256 * 1024, direction: 'download' }) satisfies UploadJob)
  const m = await done
  await worker.stop(2000)
  if (m.result === undefined) throw new Error(m.error ?? 'upload failed')
  return m.result
}

try {
  const upFile = join(tmp, 'upstream.jsonl')
  const upstream = fork(join(BENCH, 'upstream.ts'), [], { execArgv: probeFlags.slice(0, 2), env: { ...process.env, MEM_PROBE_FILE: upFile }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  const up = new Managed('upstream', upstream, () => {})
  const { port } = await up.waitForMessage<{ port: number }>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  for (const name of which) {
    const probeFile = join(tmp, `${name}.jsonl`)
    const env = { ...process.env, MEM_PROBE_FILE: probeFile }
    let proc: Managed
    let url: string
    let headers: Record<string, string> = {}
    if (name === 'naive') {
      proc = new Managed('naive', fork(join(BENCH, 'naive-proxy.ts'), [String(port)], { execArgv: probeFlags, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }), () => {})
      const r = await proc.waitForMessage<{ port: number }>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
      url = `http://127.0.0.1:${r.port}/echo/upload`
    } else {
      const dir = join(tmp, 'kv')
      rmSync(dir, { recursive: true, force: true })
      const { mkdirSync } = await import('node:fs')
      mkdirSync(dir)
      process.env.MEM_PROBE_FILE = probeFile
      const kv = await startKeyvalet({ children, repo: REPO, dir, upstreamPort: port, nodeFlags: probeFlags })
      delete process.env.MEM_PROBE_FILE
      proc = kv.process
      url = `${kv.url}/echo/upload`
      headers = { authorization: `Bearer ${kv.key}` }
    }
    await new Promise((r) => setTimeout(r, 500))
    for (let run = 0; run < RUNS; run++) {
      const before = readSamples(probeFile).at(-1) as Sample
      const upBefore = readSamples(upFile).at(-1) as Sample
      const tStart = before.t
      const rssBefore = readRss(proc.pid) ?? 0
      const sampler = new RssSampler(proc.pid, 100)
      const result = await uploadOnce(url, headers)
      const rss = sampler.stop()
      await new Promise((r) => setTimeout(r, 100))
      const during = readSamples(probeFile).filter((s) => s.t >= tStart)
      const peak = (k: keyof Sample): number => Math.max(...during.map((s) => s[k])) - before[k]
      const upDuring = readSamples(upFile).filter((s) => s.t >= upBefore.t)
      const upPeak = (k: keyof Sample): number => Math.max(...upDuring.map((s) => s[k])) - upBefore[k]
      process.stdout.write(`${name.padEnd(9)} run ${run + 1}: ${result.mibPerS.toFixed(0).padStart(5)} MiB/s  /proc growth ${((Math.max(rss.peakMiB, rss.hwmMiB ?? 0)) - rssBefore / MiB).toFixed(1).padStart(6)} MiB` +
        `  | probe peak-over-before MiB: rss ${(peak('rss') / MiB).toFixed(1)} heapUsed ${(peak('heapUsed') / MiB).toFixed(1)} heapTotal ${(peak('heapTotal') / MiB).toFixed(1)} external ${(peak('external') / MiB).toFixed(1)} arrayBuffers ${(peak('arrayBuffers') / MiB).toFixed(1)}` +
        `  (before: rss ${(before.rss / MiB).toFixed(1)}, ext ${(before.external / MiB).toFixed(1)}) | upstream rss +${(upPeak('rss') / MiB).toFixed(1)} ab +${(upPeak('arrayBuffers') / MiB).toFixed(1)}  ${DIRECTION} ${result.upstreamBytes === BYTES ? 'exact' : `WRONG ${result.status} ${result.responseText.slice(0, 200)}`}\n`)
      if (process.env.DUMP === '1') for (const s of during) process.stdout.write(`  t=${s.t} rss=${(s.rss / MiB).toFixed(1)} heapUsed=${(s.heapUsed / MiB).toFixed(1)} heapTotal=${(s.heapTotal / MiB).toFixed(1)} ext=${(s.external / MiB).toFixed(1)} ab=${(s.arrayBuffers / MiB).toFixed(1)}\n`)
    }
    if (process.env.STDERR === '1') process.stdout.write(proc.stderr.slice(-20000) + proc.stdout.slice(-60000))
    await proc.stop(3000)
  }
  await up.stop(2000)
} finally {
  await children.stopAll()
  rmSync(tmp, { recursive: true, force: true })
}
