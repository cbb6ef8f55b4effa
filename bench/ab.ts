/**
 * `node bench/ab.ts [options]`: two keyvalets side by side, A and B, under the same load in turns,
 * to tell a change of a few µs per request from the machine's drift. Each is started with the
 * bench configuration (bench/keyvalet.ts, forward listener included) from its own checkout, with
 * its own environment and V8 flags; both run throughout; each round loads A then B (B then A every
 * other round), so that a machine busy with other work weighs on both alike; every figure is
 * compared within its round (B ÷ A), and the median of those ratios is the verdict.
 * Measurement tool, not part of `npm run bench`.
 *
 *   --load gateway      closed loop on the gateway (GET /echo/items/1), CONNECTIONS connections
 *   --load paced        the bench's paced phase on the gateway: 1,000 requests/s spread evenly over 10
 *                       connections (latency is the figure there too)
 *   --load think        the bench's idle pattern on the gateway: 10 connections, each idling 10 ms
 *                       after every answer (latency is the figure there: p50 and p99 are compared too)
 *   --load forward      intercepted HTTPS through the forward listener, over HTTP/1.1 (CONNECTIONS
 *                       tunnels) and over HTTP/2 (CONNECTIONS streams on 2 tunnels): also gives
 *                       each one's HTTP/2 ÷ HTTP/1.1 CPU per request (issue 17's target)
 *   --a-repo DIR, --b-repo DIR     the checkout each runs (default: this one), e.g. a worktree at the old revision
 *   --a-env K=V, --b-env K=V       environment for one of them (repeatable)
 *   --a-flags='F', --b-flags='F'   V8 flags set at its start (bench/v8-flags-ab.mjs); with '=', as the value starts with a dash
 *   --a-node='F', --b-node='F'     node flags for it, in NODE_OPTIONS (e.g. --a-node='--cpu-prof --cpu-prof-dir=DIR')
 *   env: ROUNDS (6), DURATION_S (6), WARMUP_S (2), CONNECTIONS (64); PIN=1 pins both keyvalets
 *   (all their threads) to the last CPU and the upstream and load generator to the others
 *   (taskset), which takes the scheduler's placement out of the comparison
 *
 * CPU per request is keyvalet's whole process (all its threads, /proc) over the measured window.
 *
 * The two seats are not quite equal: the same code in two checkouts measured B ÷ A 0.96 (CPU,
 * forward, HTTP/1.1, pinned) and a p50 6 % lower for B (paced). Run an A/A first (the same
 * revision in both, or --a-repo at it) and count only what goes beyond it.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Children } from './children.ts'
import { proxyBasic, startKeyvalet, type KeyvaletInstance } from './keyvalet.ts'
import type { LoadJob, LoadResult } from './load.ts'
import { cpuSeconds } from './rss.ts'
import type { UpstreamReady } from './upstream.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const ROUNDS = Number(process.env.ROUNDS ?? 6)
const DURATION_S = Number(process.env.DURATION_S ?? 6)
const WARMUP_S = Number(process.env.WARMUP_S ?? 2)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const H2_TUNNELS = 2
const PIN = process.env.PIN === '1'
const LAST_CPU = availableParallelism() - 1

/** With PIN=1: every thread of `pid` on keyvalet's CPU (the last) or on the others. */
function pin(pid: number, keyvalet: boolean): void {
  if (!PIN || LAST_CPU < 1) return
  execFileSync('taskset', ['-a', '-p', '-c', keyvalet ? String(LAST_CPU) : `0-${LAST_CPU - 1}`, String(pid)], { stdio: 'ignore' })
}

const { values } = parseArgs({
  options: {
    load: { type: 'string', default: 'forward' },
    'a-repo': { type: 'string' }, 'b-repo': { type: 'string' },
    'a-env': { type: 'string', multiple: true, default: [] }, 'b-env': { type: 'string', multiple: true, default: [] },
    'a-flags': { type: 'string', default: '' }, 'b-flags': { type: 'string', default: '' },
    'a-node': { type: 'string', default: '' }, 'b-node': { type: 'string', default: '' },
  },
})
if (!['gateway', 'paced', 'think', 'forward'].includes(values.load)) throw new Error('--load takes gateway, paced, think or forward')
type LoadName = 'gateway' | 'paced' | 'think' | 'h1' | 'h2'
const LOADS: readonly LoadName[] = values.load === 'forward' ? ['h1', 'h2'] : [values.load as LoadName]

interface Variant {
  readonly name: 'A' | 'B'
  readonly repo: string
  readonly env: Record<string, string>
  readonly flags: string
  readonly nodeFlags: readonly string[]
}

function variant(name: 'A' | 'B', repo: string | undefined, env: readonly string[], flags: string, nodeFlags: string): Variant {
  const pairs = env.map((kv) => {
    const at = kv.indexOf('=')
    if (at <= 0) throw new Error(`--${name.toLowerCase()}-env takes K=V, not '${kv}'`)
    return [kv.slice(0, at), kv.slice(at + 1)] as const
  })
  return { name, repo: repo === undefined ? REPO : resolve(repo), env: Object.fromEntries(pairs), flags, nodeFlags: nodeFlags.split(' ').filter((f) => f !== '') }
}

const variants = [
  variant('A', values['a-repo'], values['a-env'], values['a-flags'], values['a-node']),
  variant('B', values['b-repo'], values['b-env'], values['b-flags'], values['b-node']),
]
const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'ab-'))
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN
const out = (s: string): void => void process.stdout.write(`${s}\n`)

function job(kv: KeyvaletInstance, load: LoadName, ready: UpstreamReady): LoadJob {
  const timing = { connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S }
  if (load === 'gateway') return { mode: 'closed', url: `${kv.url}/echo/items/1`, headers: { authorization: `Bearer ${kv.key}` }, ...timing }
  if (load === 'paced') return { mode: 'paced', rate: 1000, url: `${kv.url}/echo/items/1`, headers: { authorization: `Bearer ${kv.key}` }, ...timing, connections: 10 }
  if (load === 'think') return { mode: 'think', thinkMs: 10, url: `${kv.url}/echo/items/1`, headers: { authorization: `Bearer ${kv.key}` }, ...timing, connections: 10 }
  const fwd = kv.forward
  if (fwd === undefined) throw new Error('keyvalet started without its forward listener')
  return {
    mode: 'undici', url: `https://127.0.0.1:${ready.httpsPort}/items/1`, ca: fwd.caPem, tunnel: { proxy: fwd.url, token: proxyBasic(fwd.key) },
    ...(load === 'h2' ? { h2Tunnels: H2_TUNNELS } : {}), headers: {}, ...timing,
  }
}

/** One measured load against `kv`: req/s, keyvalet's CPU µs per request, latency p50 and p99 (ms). */
async function measure(kv: KeyvaletInstance, load: LoadName, ready: UpstreamReady): Promise<{ rps: number; cpuUs: number; p50: number; p99: number }> {
  const worker = children.fork('load', join(BENCH, 'load.ts'))
  worker.expectExit()
  try {
    const timeoutMs = (WARMUP_S + DURATION_S + 60) * 1000
    const measuring = worker.waitForMessage((m) => (m as { event?: string }).event === 'measuring', timeoutMs)
    const done = worker.waitForMessage<{ event: string; result?: LoadResult; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), timeoutMs)
    done.catch(() => {})
    pin(worker.pid, false)
    worker.child.send(job(kv, load, ready))
    await measuring
    const cpu0 = cpuSeconds(kv.process.pid) ?? Number.NaN
    const t0 = process.hrtime.bigint()
    const message = await done
    const wall = Number(process.hrtime.bigint() - t0) / 1e9
    const cpu = (cpuSeconds(kv.process.pid) ?? Number.NaN) - cpu0
    const result = message.result
    if (result === undefined || result.errors + result.non2xx + result.timeouts > 0 || result.ok2xx === 0) {
      throw new Error(`load ${load} failed: ${message.error ?? JSON.stringify(result?.statusCodes)} ${result?.firstError ?? ''}`)
    }
    return { rps: result.rps, cpuUs: (cpu / (result.rps * wall)) * 1e6, p50: result.latency.p50, p99: result.latency.p99 }
  } finally {
    await worker.stop(2000)
  }
}

try {
  const upstream = children.fork('upstream', join(BENCH, 'upstream.ts'))
  const ready = await upstream.waitForMessage<UpstreamReady>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  pin(upstream.pid, false)
  const started: { v: Variant; kv: KeyvaletInstance }[] = []
  for (const v of variants) {
    const dir = join(tmp, v.name)
    mkdirSync(dir)
    const kv = await startKeyvalet({
      children, repo: v.repo, dir, upstreamPort: ready.port, nodeFlags: [...v.nodeFlags, '--import', join(BENCH, 'v8-flags-ab.mjs')], extraEnv: { ...v.env, AB_V8_FLAGS: v.flags },
      forward: { httpsPort: ready.httpsPort, upstreamCaPem: ready.caPem, mintHosts: [], sseConnectors: 0 },
    })
    pin(kv.process.pid, true)
    started.push({ v, kv })
    out(`${v.name}: ${v.repo}${Object.keys(v.env).length > 0 ? ` env ${JSON.stringify(v.env)}` : ''}${v.flags === '' ? '' : ` flags '${v.flags}'`}${v.nodeFlags.length === 0 ? '' : ` node ${v.nodeFlags.join(' ')}`}`)
  }
  /** cpu[variant][load][round] */
  const cpu = new Map<string, number[]>()
  const rps = new Map<string, number[]>()
  const p50 = new Map<string, number[]>()
  const p99 = new Map<string, number[]>()
  const push = (m: Map<string, number[]>, k: string, x: number): void => void m.set(k, [...(m.get(k) ?? []), x])
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? started : [...started].reverse()
    const line: string[] = []
    for (const load of LOADS) {
      for (const { v, kv } of order) {
        const r = await measure(kv, load, ready)
        push(cpu, `${v.name} ${load}`, r.cpuUs)
        push(rps, `${v.name} ${load}`, r.rps)
        push(p50, `${v.name} ${load}`, r.p50)
        push(p99, `${v.name} ${load}`, r.p99)
        line.push(`${v.name} ${load} ${r.cpuUs.toFixed(0)} µs ${Math.round(r.rps)}/s p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms`)
      }
    }
    out(`round ${round + 1}: ${line.join(', ')}`)
  }
  const at = (m: Map<string, number[]>, k: string): number[] => m.get(k) ?? []
  const ratios = (xs: readonly number[], ys: readonly number[]): number[] => xs.map((x, i) => (ys[i] ?? Number.NaN) / x)
  out(`\nmedians over ${ROUNDS} rounds (${DURATION_S} s each; B ÷ A is the median of each round's ratio):`)
  for (const load of LOADS) {
    const a = at(cpu, `A ${load}`)
    const b = at(cpu, `B ${load}`)
    const r = ratios(a, b)
    out(`  ${load.padEnd(7)} CPU µs/request A ${median(a).toFixed(1)}, B ${median(b).toFixed(1)}; B ÷ A ${median(r).toFixed(3)} (rounds ${r.map((x) => x.toFixed(2)).join(', ')}); req/s B ÷ A ${median(ratios(at(rps, `A ${load}`), at(rps, `B ${load}`))).toFixed(3)}`)
    out(`  ${' '.repeat(7)} latency ms p50 A ${median(at(p50, `A ${load}`)).toFixed(3)}, B ${median(at(p50, `B ${load}`)).toFixed(3)}; p99 A ${median(at(p99, `A ${load}`)).toFixed(3)}, B ${median(at(p99, `B ${load}`)).toFixed(3)}`)
  }
  if (values.load === 'forward') {
    for (const name of ['A', 'B']) {
      const r = ratios(at(cpu, `${name} h1`), at(cpu, `${name} h2`))
      out(`  ${name} HTTP/2 ÷ HTTP/1.1 CPU per request: ${median(r).toFixed(3)} (rounds ${r.map((x) => x.toFixed(2)).join(', ')})`)
    }
  }
} finally {
  await children.stopAll()
  rmSync(tmp, { recursive: true, force: true })
}
