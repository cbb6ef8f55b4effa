/**
 * `node bench/v8-flags-ab.ts 'FLAGS A' 'FLAGS B'`: what V8 flags cost and save, measured on two
 * keyvalets side by side (the bench configuration with the forward listener, as `npm run bench`
 * runs it), each with its flags set at start (bench/v8-flags-ab.mjs) on top of bin/keyvalet's own,
 * both running throughout, the same closed loop against each in turn, the order swapped every
 * round: so that a machine busy with other work weighs on both alike. Per round and target: req/s,
 * keyvalet's CPU µs per request (all its threads, /proc), and its peak RSS over the loop.
 * Measurement tool, not part of `npm run bench`.
 *   env: ROUNDS (4), DURATION_S (8), CONNECTIONS (64)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Children } from './children.ts'
import { startKeyvalet, type KeyvaletInstance } from './keyvalet.ts'
import type { LoadJob, LoadResult } from './load.ts'
import { cpuSeconds, RssSampler } from './rss.ts'
import type { UpstreamReady } from './upstream.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const ROUNDS = Number(process.env.ROUNDS ?? 4)
const DURATION_S = Number(process.env.DURATION_S ?? 8)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const FLAGS = process.argv.slice(2, 4)
if (FLAGS.length !== 2) throw new Error("usage: node bench/v8-flags-ab.ts 'FLAGS A' 'FLAGS B' (either may be '')")

const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'v8-flags-ab-'))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

try {
  const upstream = children.fork('upstream', join(BENCH, 'upstream.ts'), ['--mint-hosts', '45'])
  const ready = await upstream.waitForMessage<UpstreamReady>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  const targets: { flags: string; kv: KeyvaletInstance; runs: { rps: number; cpuUs: number; peakMiB: number }[] }[] = []
  for (const [i, flags] of FLAGS.entries()) {
    const dir = join(tmp, `kv-${i}`)
    mkdirSync(dir)
    const kv = await startKeyvalet({
      children, repo: REPO, dir, upstreamPort: ready.port, nodeFlags: ['--import', join(BENCH, 'v8-flags-ab.mjs')], extraEnv: { AB_V8_FLAGS: flags },
      forward: { httpsPort: ready.httpsPort, upstreamCaPem: ready.caPem, mintHosts: ready.mintHosts, sseConnectors: 0 },
    })
    targets.push({ flags, kv, runs: [] })
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
      const load = children.fork('load', join(BENCH, 'load.ts'))
      load.expectExit()
      const measuring = load.waitForMessage((m) => (m as { event?: string }).event === 'measuring', 60_000)
      const done = load.waitForMessage<{ event: string; result?: LoadResult }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), 120_000)
      load.child.send({ mode: 'closed', url: `${t.kv.url}/echo/items/1`, headers: { authorization: `Bearer ${t.kv.key}` }, connections: CONNECTIONS, durationS: DURATION_S, warmupS: 2 } satisfies LoadJob)
      await measuring
      const sampler = new RssSampler(t.kv.process.pid, 100)
      const cpu0 = cpuSeconds(t.kv.process.pid) ?? Number.NaN
      const result = (await done).result
      const cpu = (cpuSeconds(t.kv.process.pid) ?? Number.NaN) - cpu0
      const rss = sampler.stop()
      await load.stop(2000)
      if (result === undefined || result.errors + result.non2xx > 0) throw new Error(`load against '${t.flags}' failed`)
      const requests = result.rps * DURATION_S
      t.runs.push({ rps: result.rps, cpuUs: (cpu / requests) * 1e6, peakMiB: Math.max(rss.peakMiB, rss.hwmMiB ?? 0) })
      const last = t.runs.at(-1)
      process.stdout.write(`round ${round + 1} '${t.flags}': ${Math.round(result.rps)} req/s, ${last?.cpuUs.toFixed(0)} µs CPU/request, peak RSS ${last?.peakMiB.toFixed(1)} MiB\n`)
    }
  }
  for (const t of targets) {
    process.stdout.write(`median '${t.flags}': ${Math.round(median(t.runs.map((r) => r.rps)))} req/s, ${median(t.runs.map((r) => r.cpuUs)).toFixed(0)} µs CPU/request, peak RSS ${median(t.runs.map((r) => r.peakMiB)).toFixed(1)} MiB (highest ${Math.max(...t.runs.map((r) => r.peakMiB)).toFixed(1)})\n`)
  }
} finally {
  await children.stopAll()
  rmSync(tmp, { recursive: true, force: true })
}
