/**
 * `npm run bench`: keyvalet's gateway side by side with the upstream direct and two naive reverse
 * proxies: node:http with an http.Agent (naive-proxy.ts) and node:http with undici's Pool, the
 * client keyvalet uses (naive-undici-proxy.ts, the floor for a proxy built like keyvalet). Upstream, proxy under test and load generator each run in their own process.
 *
 * Environment:
 *   BENCH_DURATION_S   seconds per measurement (default 8)
 *   BENCH_WARMUP_S     warm-up seconds before each closed-loop measurement (default 2)
 *   BENCH_AUDIT_THREAD on|off|auto: keyvalet's audit.thread (default: its own default, auto)
 *   BENCH_ROUNDS       rounds of the closed, fixed (paced), think and grpc phases and of keyvalet's
 *                      intercepted HTTPS (HTTP/1.1 and HTTP/2) in the forward phase, targets interleaved; the run of
 *                      median CPU µs per request (closed, grpc) or median p99 (paced, think) is reported (default 3)
 *   BENCH_SKIP_UPLOAD  1: skip the 1 GiB uploads and downloads (phase upload)
 *   BENCH_UPLOAD_MIB   upload size in MiB (default 1024)
 *   BENCH_PROFILE      1: run keyvalet with --cpu-prof and print a summary of where its time goes; the grpc phase's own
 *                      keyvalet too, summarised over its sequential measured calls only (bench/results/keyvalet-grpc.cpuprofile),
 *                      e.g. BENCH_PHASES=grpc BENCH_PROFILE=1 npm run bench; `node bench/profile.ts FILE` summarises a kept profile
 *   BENCH_POLICY_ITERATIONS  decide() iterations per case (default 200000)
 *   BENCH_BUDGET_ITERATIONS  budget-stage checks per case (default 100000)
 *   BENCH_PHASES       comma list of policy,budget,mcp,store,push,grpc,closed,peak,observe,fixed,think,forward,mint,sse,upload (default all; e.g. closed with BENCH_PROFILE=1)
 *   BENCH_GRPC_CALLS   sequential gRPC unary calls each way in the grpc phase, after 1,000 warm-up, then as many with 16 in flight (default 2000; see bench/grpc.ts)
 *   BENCH_NODE_FLAGS   extra node flags (space-separated) for every keyvalet the bench starts, e.g. a V8 heap flag to measure
 *   BENCH_STORE_REQUESTS  requests per store and round in the store phase (default 3000; see bench/store.ts)
 *   BENCH_PUSHES       pushes in the push phase (default 20; see bench/config-push.ts)
 *   BENCH_OBSERVE_ROUNDS  rounds of the observe phase (default 3)
 *
 * Phase peak: a closed loop at 256 connections against the naive proxy and keyvalet, for their peak
 * RSS under load (and CPU µs per request at that concurrency). bench/idle-memory.ts breaks
 * keyvalet's memory down (heap spaces, worker thread, modules) idle or under such a load.
 *
 * Phase workers: a keyvalet of its own with `start --workers 1` (one process) and then 2, the
 * closed loop of phase closed against each; throughput, the ratio to 1 worker, and the CPU of
 * every process (load generator, upstream, primary, each worker), since on a 2-core machine they
 * all share the cores; the machine's load average before and after.
 *
 * Phase observe measures what metrics and the per-request log line cost: a second keyvalet with
 * `metrics.enabled: false` and `log.level: error` beside the main one (keyvalet's defaults: both
 * on), the same closed loop against each in alternation, and keyvalet's CPU µs per request of
 * each (median of the rounds) and their ratio.
 *   BENCH_SSE_STREAMS  concurrent event streams in the sse phase (default 10000; lowered to fit RLIMIT_NOFILE)
 *
 * Phases forward (plain http and intercepted https through the forward listener, the latter over
 * HTTP/1.1 with a tunnel per connection and over HTTP/2 with every stream on two tunnels at most, beside mitmproxy
 * the same two ways when `mitmdump` is installed: apt-get install mitmproxy; without it the mitmproxy rows say
 * so and stay empty) and mint (leaf certificate on the first
 * CONNECT to a new host) add keyvalet's forward listener and their connectors to its config. sse
 * (many open event streams) starts a keyvalet of its own, then a naive proxy, each fresh.
 *
 * It reports; it never fails on a missed target. It exits non-zero only when something broke:
 * errors or non-2xx answers, a child crashing, keyvalet not starting.
 */

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, arch, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, ProxyAgent, request } from 'undici'
import { Children, type Managed } from './children.ts'
import { proxyBasic, SECRET_VALUE, startKeyvalet, type KeyvaletInstance } from './keyvalet.ts'
import type { LoadJob, LoadResult } from './load.ts'
import { mitmdumpVersion, startMitmproxy, type Mitmproxy } from './mitm.ts'
import type { MintJob, MintResult } from './mint.ts'
import type { SseCloseResult, SseJob, SseOpenResult } from './sse.ts'
import type { UpstreamReady } from './upstream.ts'
import type { PolicyResult } from './policy.ts'
import type { McpBenchResult } from './mcp.ts'
import { formatGrpc, type GrpcBenchResult, type GrpcJob } from './grpc.ts'
import type { BudgetResult } from './budget.ts'
import type { StoreBenchResult } from './store.ts'
import type { PushBenchResult } from './config-push.ts'
import { formatProfile, summariseProfile, type ProfileSummary } from './profile.ts'
import { inRounds } from './rounds.ts'
import { cpuSeconds, readRss, RssSampler, toMiB, type RssSummary } from './rss.ts'
import type { UploadJob, UploadResult } from './upload.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const RESULTS = join(BENCH, 'results')

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`)
  return n
}

const DURATION_S = envNumber('BENCH_DURATION_S', 8)
const WARMUP_S = envNumber('BENCH_WARMUP_S', Math.min(2, DURATION_S))
const SKIP_UPLOAD = process.env.BENCH_SKIP_UPLOAD === '1'
const UPLOAD_BYTES = Math.round(envNumber('BENCH_UPLOAD_MIB', 1024) * 1024 * 1024)
const PROFILE = process.env.BENCH_PROFILE === '1'
const POLICY_ITERATIONS = Math.round(envNumber('BENCH_POLICY_ITERATIONS', 200_000))
const ALL_PHASES = ['policy', 'budget', 'mcp', 'store', 'push', 'grpc', 'closed', 'peak', 'observe', 'workers', 'fixed', 'think', 'forward', 'mint', 'sse', 'upload'] as const
/**
 * Warm-up calls each way before the grpc phase measures: keyvalet's first calls also pay for V8
 * compiling their code (on its compiler thread, counted in the process's CPU). With 200, in one run
 * on a loaded machine the first 500 measured calls cost ~30 % more CPU each than the later ones;
 * on a quiet machine the 2,000-call figure did not move measurably between 200 and 1,000.
 */
const GRPC_WARMUP_CALLS = 1000
const OBSERVE_ROUNDS = Math.round(envNumber('BENCH_OBSERVE_ROUNDS', 3))
const PHASES: ReadonlySet<string> = new Set((process.env.BENCH_PHASES ?? ALL_PHASES.join(',')).split(',').map((x) => x.trim()).filter((x) => x !== ''))
for (const ph of PHASES) if (!(ALL_PHASES as readonly string[]).includes(ph)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(ph)} (known: ${ALL_PHASES.join(', ')})`)
const RUN_UPLOAD = PHASES.has('upload') && !SKIP_UPLOAD
const CONNECTIONS = 64
const ROUNDS = Math.max(1, Math.floor(envNumber('BENCH_ROUNDS', 3)))
/** The peak phase's concurrency. */
const PEAK_CONNECTIONS = 256
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((x) => x !== '')
/** Tunnels the HTTP/2 forward run multiplexes its CONNECTIONS concurrent requests on. */
const H2_TUNNELS = 2
const RATE = 1000
const RATE_CONNECTIONS = 10
/** The idle pattern: ms each connection waits after an answer before its next request. */
const THINK_MS = 10
const PATH = '/items/1'
const NEEDS_FORWARD = PHASES.has('forward') || PHASES.has('mint')
/** The mint phase: hosts (IP literals 127.0.0.2 …), the first MINT_WARMUP of them not counted. */
const MINT_WARMUP = 5
const MINT_HOSTS = PHASES.has('mint') ? MINT_WARMUP + 40 : 0
/** mitmproxy's throughput for a small request on this machine, as the issue states it. */
const MITMPROXY_ISSUE_RPS = 1100

/** RLIMIT_NOFILE (soft, hard) of this process; children inherit it (Node raises its own soft limit to the hard one). */
function nofileLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  const n = (x: string | undefined): number => (x === undefined || x === 'unlimited' ? Number.POSITIVE_INFINITY : Number(x))
  return { soft: n(m?.[1]), hard: n(m?.[2]) }
}
const SSE_WANTED = Math.round(envNumber('BENCH_SSE_STREAMS', 10_000))
const NOFILE = nofileLimit()
/** keyvalet holds two descriptors per stream (client side, upstream side) plus its own ~1,000 of headroom. */
const SSE_STREAMS = Math.min(SSE_WANTED, Math.floor((NOFILE.hard - 1000) / 2 / 100) * 100)
/** keyvalet's pool per connector holds 256 upstream connections: at most 250 streams per sse-N connector. */
const SSE_PER_CONNECTOR = 250
const SSE_CONNECTORS = PHASES.has('sse') ? Math.max(1, Math.ceil(SSE_STREAMS / SSE_PER_CONNECTOR)) : 0
/** The probe: more streams than one connector's pool has connections, on a connector of its own (sse-SSE_CONNECTORS). */
const SSE_PROBE_STREAMS = 300
const SSE_PROBE_WAIT_MS = 3000
const SSE_PROBE_SETTLE_MS = 1500
const SSE_HOLD_MS = 4000
const SSE_DRAIN_MS = 10_000

/** Issue 12's targets (and earlier issues' still held). */
const GOALS = { rpsVsNaive: 1.0, cpuVsNaive: 1.0, idleRssMiB: 100, peakRssMiB: 250, p50DeltaMs: 0.5, p99DeltaMs: 2, uploadGrowthMiB: 64, decideUs: 10, vsMitmproxy: 5, mintMs: 2, sseRssMiB: 400 } as const

type TargetName = 'direct' | 'naive' | 'naive-undici' | 'keyvalet'
interface Target { readonly name: TargetName; readonly url: string; readonly headers: Record<string, string>; readonly proc: Managed | undefined }

interface LoadRun { readonly result: LoadResult; readonly cpuPct: Record<string, number>; readonly rss: RssSummary | undefined }

/** The proxy's CPU µs per request in a run (undefined for the direct target, which has no proxy). */
function cpuMicros(run: LoadRun | undefined): number | undefined {
  const cpu = run?.cpuPct['proxy']
  return run === undefined || cpu === undefined || run.result.rps === 0 ? undefined : (cpu / 100 / run.result.rps) * 1e6
}
interface UploadRun { readonly result: UploadResult; readonly rss: RssSummary | undefined; readonly rssBeforeMiB: number | undefined }

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`)

const children = new Children()
const broken: string[] = []
let tmp: string | undefined
let interrupted = false

async function cleanup(): Promise<void> {
  await children.stopAll()
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
  tmp = undefined
}

process.on('SIGINT', () => {
  interrupted = true
  log('interrupted: stopping children')
  void cleanup().finally(() => process.exit(130))
})
process.on('exit', () => {
  children.killAllNow()
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
})

async function forkReady<T extends { port: number } = { port: number }>(name: string, file: string, args: string[] = []): Promise<{ proc: Managed; port: number; ready: T }> {
  const proc = children.fork(name, join(BENCH, file), args)
  const ready = await proc.waitForMessage<T>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  return { proc, port: ready.port, ready }
}

/** A one-shot worker: send `job`, wait for `{ event: 'result' | 'error' }`. */
/** The one .cpuprofile a keyvalet wrote into `dir` (when it exited), copied to results/ as `name` and summarised (within `window`, µs). */
function keptProfile(dir: string, name: string, window?: { from: number; to: number }): { summary: ProfileSummary; file: string } {
  const written = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'))
  if (written === undefined) throw new Error(`no .cpuprofile written in ${dir}`)
  const file = join(RESULTS, name)
  copyFileSync(join(dir, written), file)
  return { summary: summariseProfile(file, REPO, 25, window), file }
}

async function runWorker<J, R>(name: string, file: string, job: J, timeoutMs: number): Promise<R> {
  const worker = children.fork(name, join(BENCH, file))
  worker.expectExit()
  try {
    const done = worker.waitForMessage<{ event: string; result?: R; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), timeoutMs)
    worker.child.send(job as object)
    const m = await done
    if (m.event !== 'result' || m.result === undefined) throw new Error(`${name} failed: ${m.error ?? 'no result'}`)
    return m.result
  } finally {
    await worker.stop(2000)
  }
}

/** Asks the upstream how many event streams it holds open. */
async function upstreamStreams(upstream: Managed): Promise<number> {
  const answer = upstream.waitForMessage<{ streams: number }>((m) => typeof (m as { streams?: unknown }).streams === 'number', 5000)
  upstream.child.send({ cmd: 'streams' })
  return (await answer).streams
}

function openFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

/** One load job in a fresh load-generator process; CPU of the listed processes over the measured window. */
async function runLoad(job: LoadJob, watch: Record<string, { readonly pid: number } | undefined>, rssOf: Managed | undefined): Promise<LoadRun> {
  const worker = children.fork(`load ${job.mode} ${job.url}`, join(BENCH, 'load.ts'))
  worker.expectExit()
  const all: Record<string, { readonly pid: number }> = { loadgen: worker }
  for (const [k, v] of Object.entries(watch)) if (v !== undefined) all[k] = v
  const sampler = rssOf === undefined ? undefined : new RssSampler(rssOf.pid, 100)
  try {
    const timeoutMs = (job.warmupS + job.durationS + 45) * 1000
    const measuring = worker.waitForMessage<unknown>((m) => (m as { event?: string }).event === 'measuring', timeoutMs)
    const done = worker.waitForMessage<{ event: string; result?: LoadResult; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), timeoutMs)
    done.catch(() => {})
    worker.child.send(job)
    await measuring
    const cpu0 = Object.fromEntries(Object.entries(all).map(([k, m]) => [k, cpuSeconds(m.pid) ?? Number.NaN]))
    const t0 = process.hrtime.bigint()
    const message = await done
    const wall = Number(process.hrtime.bigint() - t0) / 1e9
    const cpuPct = Object.fromEntries(Object.entries(all).map(([k, m]) => [k, (100 * ((cpuSeconds(m.pid) ?? Number.NaN) - (cpu0[k] as number))) / wall]))
    if (message.event !== 'result' || message.result === undefined) throw new Error(`load generator failed: ${message.error ?? 'no result'}`)
    return { result: message.result, cpuPct, rss: sampler?.stop() }
  } finally {
    sampler?.stop()
    await worker.stop(2000)
  }
}

function checkLoad(target: TargetName, what: string, r: LoadResult): void {
  const bad = r.errors + r.non2xx + r.timeouts
  if (bad > 0 || r.ok2xx === 0) {
    broken.push(`${target} ${what}: ${r.ok2xx} 2xx, ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts (status codes ${JSON.stringify(r.statusCodes)})`)
  }
}

async function runUpload(target: Target, rssOf: Managed | undefined, direction: 'upload' | 'download' = 'upload'): Promise<UploadRun> {
  const worker = children.fork(`upload ${target.name}`, join(BENCH, 'upload.ts'))
  worker.expectExit()
  const rssBefore = rssOf === undefined ? undefined : readRss(rssOf.pid)
  const sampler = rssOf === undefined ? undefined : new RssSampler(rssOf.pid, 100)
  try {
    const done = worker.waitForMessage<{ event: string; result?: UploadResult; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), 180_000)
    const job: UploadJob = direction === 'upload'
      ? { url: `${target.url}/upload`, headers: target.headers, bytes: UPLOAD_BYTES, chunkBytes: 256 * 1024 }
      : { url: `${target.url}/items/download/${UPLOAD_BYTES}`, headers: target.headers, bytes: UPLOAD_BYTES, chunkBytes: 256 * 1024, direction }
    worker.child.send(job)
    const message = await done
    if (message.event !== 'result' || message.result === undefined) throw new Error(`upload failed: ${message.error ?? 'no result'}`)
    return { result: message.result, rss: sampler?.stop(), rssBeforeMiB: rssBefore === undefined ? undefined : toMiB(rssBefore) }
  } finally {
    sampler?.stop()
    await worker.stop(2000)
  }
}

async function sanityCheck(target: Target): Promise<void> {
  const res = await request(`${target.url}${PATH}`, { headers: target.headers })
  const body = await res.body.text()
  if (res.statusCode !== 200 || body.length < 100) throw new Error(`${target.name}: GET ${PATH} gave ${res.statusCode} ${body.slice(0, 300)}`)
  if (target.name !== 'keyvalet') return
  if (res.headers['x-keyvalet-request-id'] === undefined) throw new Error('keyvalet: no x-keyvalet-request-id on the answer')
  // The upstream echoes the Authorization it received: it must have been the real secret, masked on the way back.
  const echo = await request(`${target.url}/items/auth-echo`, { headers: target.headers })
  const text = await echo.body.text()
  if (echo.statusCode !== 200 || text.includes(SECRET_VALUE) || !text.includes(`Bearer ${'*'.repeat(SECRET_VALUE.length)}`)) {
    throw new Error(`keyvalet: credential not injected or not redacted: ${echo.statusCode} ${text.slice(0, 200)}`)
  }
}

/** One request each way through the forward listener: the credential injected, and masked on the way back. */
async function forwardSanityCheck(forwardUrl: string, key: string, key2: string, kvCa: string, plainPort: number, httpsPort: number, upstreamCa: string): Promise<void> {
  const check = async (what: string, url: string, dispatcher: Agent | ProxyAgent, viaKeyvalet: boolean): Promise<void> => {
    try {
      const res = await request(url, { dispatcher })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${text.slice(0, 300)}`)
      if (!viaKeyvalet) return
      if (res.headers['x-keyvalet-request-id'] === undefined) throw new Error('no x-keyvalet-request-id on the answer')
      if (text.includes(SECRET_VALUE) || !text.includes(`Bearer ${'*'.repeat(SECRET_VALUE.length)}`)) throw new Error(`credential not injected or not redacted: ${text.slice(0, 200)}`)
    } catch (err) {
      throw new Error(`${what}: GET ${url}: ${err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err)}`)
    } finally {
      await dispatcher.close()
    }
  }
  await check('forward plain http (absolute form)', `http://127.0.0.1:${plainPort}/items/auth-echo`, new ProxyAgent({ uri: forwardUrl, token: proxyBasic(key), proxyTunnel: false }), true)
  await check('forward https (CONNECT, intercepted)', `https://127.0.0.1:${httpsPort}/items/auth-echo`, new ProxyAgent({ uri: forwardUrl, token: proxyBasic(key2), requestTls: { ca: kvCa } }), true)
  await check('direct https', `https://127.0.0.1:${httpsPort}${PATH}`, new Agent({ connect: { ca: upstreamCa } }), false)
}

interface SseReport {
  readonly wanted: number
  /** Distinct paths (connectors, for keyvalet) the streams were spread over. */
  readonly paths: number
  readonly probe: SseOpenResult | undefined
  /** Upstream streams just before the main part (SSE_PROBE_SETTLE_MS after every probe client closed). */
  readonly upstreamBefore: number
  readonly open: SseOpenResult
  /** Upstream streams with all clients connected. */
  readonly upstreamOpen: number
  readonly withTick: number
  readonly closeMs: number
  readonly upstreamAfterClose: number
  /** From the client's last close to the upstream holding no more streams than before (bounded by SSE_DRAIN_MS). */
  readonly drainMs: number
  readonly rssBeforeMiB: number
  readonly rssOpenMiB: number
  readonly rssHeldMiB: number
  readonly rssAfterCloseMiB: number
  /** From before the probe until the close was asked for: every stream open, ramp included. */
  readonly rss: RssSummary
  /** While the streams were being closed and 1.5 s after (keyvalet finishes their records then). */
  readonly rssClosing: RssSummary
  readonly fdsOpen: number | undefined
  readonly cpuPctHold: number
  /** keyvalet's process.memoryUsage() (MiB) before the probe and while every stream was held. */
  readonly memBefore: MemorySample | undefined
  readonly memHeld: MemorySample | undefined
}

interface MemorySample { readonly rss: number; readonly heapTotal: number; readonly heapUsed: number; readonly external: number; readonly arrayBuffers: number }

/** The last line of bench/mem-probe.mjs's output: process.memoryUsage() of keyvalet's main thread. */
function lastMemory(file: string): MemorySample | undefined {
  try {
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
    const m = JSON.parse(lines.at(-1) ?? '') as MemorySample
    return { rss: m.rss / 2 ** 20, heapTotal: m.heapTotal / 2 ** 20, heapUsed: m.heapUsed / 2 ** 20, external: m.external / 2 ** 20, arrayBuffers: m.arrayBuffers / 2 ** 20 }
  } catch {
    return undefined
  }
}

async function runSse(opts: { proc: Managed; upstreamProc: Managed; origin: string; headers: Record<string, string>; paths: readonly string[]; probePath?: string; memFile?: string }): Promise<SseReport> {
  const { proc, upstreamProc, memFile } = opts
  const rssBeforeMiB = toMiB(readRss(proc.pid))
  const memBefore = memFile === undefined ? undefined : lastMemory(memFile)
  const sampler = new RssSampler(proc.pid, 100)
  const worker = children.fork('sse client', join(BENCH, 'sse.ts'))
  worker.expectExit()
  const waitFor = <T>(event: string, timeoutMs: number): Promise<T> => {
    const p = worker.waitForMessage<{ event: string; result?: T; error?: string }>((m) => [event, 'error'].includes(String((m as { event?: string }).event)), timeoutMs)
      .then((m) => {
        if (m.event === 'error') throw new Error(`sse client failed: ${m.error ?? ''}`)
        return m.result as T
      })
    p.catch(() => {})
    return p
  }
  try {
    const job: SseJob = {
      origin: opts.origin, headers: opts.headers, paths: opts.paths, streams: SSE_STREAMS, openConcurrency: 256, openTimeoutMs: 30_000,
      ...(opts.probePath === undefined ? {} : { probe: { path: opts.probePath, streams: SSE_PROBE_STREAMS, waitMs: SSE_PROBE_WAIT_MS } }),
    }
    let probe: SseOpenResult | undefined
    let upstreamBefore: number
    if (opts.probePath !== undefined) {
      const probeP = waitFor<SseOpenResult>('probe', 30_000)
      const probeClosedP = waitFor<undefined>('probe-closed', 40_000)
      worker.child.send(job)
      probe = await probeP
      await probeClosedP
      await new Promise((r) => setTimeout(r, SSE_PROBE_SETTLE_MS))
      upstreamBefore = await upstreamStreams(upstreamProc)
    } else {
      upstreamBefore = await upstreamStreams(upstreamProc)
    }
    const openP = waitFor<SseOpenResult>('open', 60_000)
    if (opts.probePath !== undefined) worker.child.send({ cmd: 'open' })
    else worker.child.send(job)
    const open = await openP
    const rssOpenMiB = toMiB(readRss(proc.pid))
    const fdsOpen = openFds(proc.pid)
    const upstreamOpen = await upstreamStreams(upstreamProc)
    const cpu0 = cpuSeconds(proc.pid) ?? Number.NaN
    await new Promise((r) => setTimeout(r, SSE_HOLD_MS))
    const cpuPctHold = (100 * ((cpuSeconds(proc.pid) ?? Number.NaN) - cpu0)) / (SSE_HOLD_MS / 1000)
    const rssHeldMiB = toMiB(readRss(proc.pid))
    const memHeld = memFile === undefined ? undefined : lastMemory(memFile)
    const rss = sampler.stop()
    const closing = new RssSampler(proc.pid, 100)
    const closedP = waitFor<SseCloseResult>('result', 30_000)
    worker.child.send({ cmd: 'close' })
    const closed = await closedP
    // The proxy tears its upstream streams down after the clients have gone: wait for that (bounded).
    const t0 = Date.now()
    let upstreamAfterClose = await upstreamStreams(upstreamProc)
    while (upstreamAfterClose > upstreamBefore && Date.now() - t0 < SSE_DRAIN_MS) {
      await new Promise((r) => setTimeout(r, 250))
      upstreamAfterClose = await upstreamStreams(upstreamProc)
    }
    const drainMs = Date.now() - t0
    const rssClosing = closing.stop()
    return {
      wanted: SSE_WANTED, paths: opts.paths.length, probe, upstreamBefore, open, upstreamOpen, withTick: closed.withTick, closeMs: closed.closeMs, upstreamAfterClose, drainMs,
      rssBeforeMiB, rssOpenMiB, rssHeldMiB, rssAfterCloseMiB: toMiB(readRss(proc.pid)), rss, rssClosing, fdsOpen, cpuPctHold, memBefore, memHeld,
    }
  } finally {
    sampler.stop()
    await worker.stop(5000)
  }
}

// ---------------------------------------------------------------- formatting

const f = (n: number | undefined, digits = 2): string => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits))
const signed = (n: number | undefined, digits = 2): string => (n === undefined || !Number.isFinite(n) ? '—' : `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`)
const int = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US'))

function table(header: readonly string[], rows: readonly (readonly string[])[], alignLeft = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string => '  ' + cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

const mark = (ok: boolean | undefined): string => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'MISS')

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const startedAt = new Date()
  mkdirSync(RESULTS, { recursive: true })
  writeFileSync(join(RESULTS, '.gitignore'), '*\n!.gitignore\n')
  tmp = mkdtempSync(join(tmpdir(), 'keyvalet-bench-'))
  const fsType = (() => {
    const t = statfsSync(tmp).type
    return t === 0xef53 ? 'ext4' : t === 0x01021994 ? 'tmpfs' : t === 0x58465342 ? 'xfs' : t === 0x794c7630 ? 'overlayfs' : `fs 0x${t.toString(16)}`
  })()
  const cpuList = cpus()
  const machine = {
    platform: `${platform()} ${arch()}`, cpus: cpuList.length, cpuModel: cpuList[0]?.model ?? 'unknown',
    memGiB: totalmem() / 1024 ** 3, node: process.version, tmpFs: fsType,
  }
  log(`machine: ${machine.cpus} CPUs, Node ${machine.node}; duration ${DURATION_S} s, warm-up ${WARMUP_S} s, phases ${[...PHASES].join(',')}${SKIP_UPLOAD ? ', uploads skipped' : ''}${PROFILE ? ', profiling keyvalet' : ''}`)

  // 1. Policy micro-benchmark first, while nothing else runs.
  log(`policy: decide() at 1,000 rules, ${POLICY_ITERATIONS.toLocaleString('en-US')} iterations per case`)
  let policy: PolicyResult | undefined
  if (PHASES.has('policy')) {
    const worker = children.fork('policy bench', join(BENCH, 'policy.ts'), [], { ...process.env, BENCH_POLICY_ITERATIONS: String(POLICY_ITERATIONS) })
    worker.expectExit()
    const m = await worker.waitForMessage<{ event: string; result?: PolicyResult; error?: string }>((x) => ['result', 'error'].includes(String((x as { event?: string }).event)), 120_000)
      .catch((err: unknown) => ({ event: 'error', error: String(err) }) as { event: string; result?: PolicyResult; error?: string })
    await worker.stop(2000)
    if (m.result !== undefined) policy = m.result
    else broken.push(`policy bench failed: ${m.error ?? 'no result'}`)
  }
  let budget: BudgetResult | undefined
  if (PHASES.has('budget')) {
    log('budget: the budget stage on a real SQLite store')
    const worker = children.fork('budget bench', join(BENCH, 'budget.ts'), [], { ...process.env })
    worker.expectExit()
    const m = await worker.waitForMessage<{ event: string; result?: BudgetResult; error?: string }>((x) => ['result', 'error'].includes(String((x as { event?: string }).event)), 300_000)
      .catch((err: unknown) => ({ event: 'error', error: String(err) }) as { event: string; result?: BudgetResult; error?: string })
    await worker.stop(2000)
    if (m.result !== undefined) budget = m.result
    else broken.push(`budget bench failed: ${m.error ?? 'no result'}`)
  }
  let store: StoreBenchResult | undefined
  if (PHASES.has('store')) {
    log('store: a request on SQLite and on PostgreSQL (reads kept, and not); revocation propagation across three instances')
    const worker = children.fork('store bench', join(BENCH, 'store.ts'), [], { ...process.env })
    worker.expectExit()
    const m = await worker.waitForMessage<{ event: string; result?: StoreBenchResult; error?: string }>((x) => ['result', 'error'].includes(String((x as { event?: string }).event)), 900_000)
      .catch((err: unknown) => ({ event: 'error', error: String(err) }) as { event: string; result?: StoreBenchResult; error?: string })
    await worker.stop(5000)
    if (m.result !== undefined) store = m.result
    else broken.push(`store bench failed: ${m.error ?? 'no result'}`)
  }
  let push: PushBenchResult | undefined
  if (PHASES.has('push')) {
    log('push: a pushed policy in force on two PostgreSQL instances (bench/config-push.ts)')
    const worker = children.fork('push bench', join(BENCH, 'config-push.ts'), [], { ...process.env })
    worker.expectExit()
    const m = await worker.waitForMessage<{ event: string; result?: PushBenchResult; error?: string }>((x) => ['result', 'error'].includes(String((x as { event?: string }).event)), 300_000)
      .catch((err: unknown) => ({ event: 'error', error: String(err) }) as { event: string; result?: PushBenchResult; error?: string })
    await worker.stop(5000)
    if (m.result !== undefined) push = m.result
    else broken.push(`push bench failed: ${m.error ?? 'no result'}`)
  }
  let mcp: McpBenchResult | undefined
  if (PHASES.has('mcp')) {
    log('mcp: tools/call decision at 200 tool rules with 1 KiB arguments; event latency through keyvalet')
    const worker = children.fork('mcp bench', join(BENCH, 'mcp.ts'), [], { ...process.env, BENCH_POLICY_ITERATIONS: String(POLICY_ITERATIONS) })
    worker.expectExit()
    const m = await worker.waitForMessage<{ event: string; result?: McpBenchResult; error?: string }>((x) => ['result', 'error'].includes(String((x as { event?: string }).event)), 120_000)
      .catch((err: unknown) => ({ event: 'error', error: String(err) }) as { event: string; result?: McpBenchResult; error?: string })
    await worker.stop(2000)
    if (m.result !== undefined) mcp = m.result
    else broken.push(`mcp bench failed: ${m.error ?? 'no result'}`)
  }

  let grpcResult: GrpcBenchResult | undefined
  let grpcRounds: GrpcBenchResult[] = []
  let grpcProfile: { summary: ProfileSummary; file: string } | undefined
  if (PHASES.has('grpc')) {
    // Each round a keyvalet of its own; the round of median CPU per call is reported, every round beside it.
    const profileRoot = tmp
    const rounds = await inRounds(ROUNDS, [{ name: 'grpc' }], async (_t, round) => {
      log(`grpc, round ${round + 1}/${ROUNDS}: unary calls, sequential, direct and through the forward proxy (interception over HTTP/2)`)
      const result = await runWorker<GrpcJob, GrpcBenchResult>('grpc bench', 'grpc.ts', {
        calls: Math.round(envNumber('BENCH_GRPC_CALLS', 2000)), warmup: GRPC_WARMUP_CALLS, concurrency: 16,
        nodeFlags: [...NODE_FLAGS, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(profileRoot, `grpc-cpu-profile-${round}`)}`] : [])],
      }, 600_000).catch((err: unknown) => void broken.push(`grpc bench, round ${round + 1}: ${err instanceof Error ? err.message : String(err)}`))
      if (result !== undefined && result.injected !== result.calls) broken.push(`grpc, round ${round + 1}: the credential reached the upstream on ${result.injected} of ${result.calls} calls`)
      return { round, result }
    }, (r) => r.result?.keyvaletCpuUsPerCall ?? Number.POSITIVE_INFINITY)
    const median = rounds.median.get('grpc')
    grpcResult = median?.result
    grpcRounds = (rounds.all.get('grpc') ?? []).flatMap((r) => (r.result === undefined ? [] : [r.result]))
    if (PROFILE && grpcResult !== undefined && median !== undefined) {
      try {
        grpcProfile = keptProfile(join(tmp, `grpc-cpu-profile-${median.round}`), 'keyvalet-grpc.cpuprofile', grpcResult.measuredUs)
      } catch (err) {
        broken.push(`grpc profile: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }

  // 2. Processes: upstream, naive proxy, keyvalet.
  const upstream = await forkReady<UpstreamReady>('upstream', 'upstream.ts', ['--mint-hosts', String(MINT_HOSTS)])
  const naive = await forkReady('naive proxy', 'naive-proxy.ts', [String(upstream.port)])
  const naiveUndici = await forkReady('naive undici proxy', 'naive-undici-proxy.ts', [String(upstream.port)])
  const profileDir = join(tmp, 'cpu-profile')
  const upstreamCaFile = join(tmp, 'upstream-ca.pem')
  writeFileSync(upstreamCaFile, upstream.ready.caPem)
  let keyvalet: KeyvaletInstance | undefined
  try {
    keyvalet = await startKeyvalet({
      children, repo: REPO, dir: tmp, upstreamPort: upstream.port,
      nodeFlags: [...NODE_FLAGS, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
      ...(NEEDS_FORWARD ? { forward: { httpsPort: upstream.ready.httpsPort, upstreamCaPem: upstream.ready.caPem, mintHosts: upstream.ready.mintHosts, sseConnectors: 0 } } : {}),
    })
  } catch (err) {
    broken.push(`keyvalet did not start: ${err instanceof Error ? err.message : String(err)}`)
  }
  const targets: Target[] = [
    { name: 'direct', url: `http://127.0.0.1:${upstream.port}`, headers: {}, proc: undefined },
    { name: 'naive', url: `http://127.0.0.1:${naive.port}/echo`, headers: {}, proc: naive.proc },
    { name: 'naive-undici', url: `http://127.0.0.1:${naiveUndici.port}/echo`, headers: {}, proc: naiveUndici.proc },
  ]
  if (keyvalet !== undefined) targets.push({ name: 'keyvalet', url: `${keyvalet.url}/echo`, headers: { authorization: `Bearer ${keyvalet.key}` }, proc: keyvalet.process })
  for (const t of [...targets]) {
    try {
      await sanityCheck(t)
    } catch (err) {
      broken.push(`sanity check: ${err instanceof Error ? err.message : String(err)}`)
      targets.splice(targets.indexOf(t), 1)
    }
  }
  const kv = targets.find((t) => t.name === 'keyvalet')
  await new Promise((r) => setTimeout(r, 500))
  const idleRssMiB = kv?.proc === undefined ? undefined : toMiB(readRss(kv.proc.pid))
  const naiveIdleRssMiB = toMiB(readRss(naive.proc.pid))

  // 3. Closed loop, 64 connections.
  const closedRounds = await inRounds<TargetName, Target, LoadRun>(PHASES.has('closed') ? ROUNDS : 0, targets, async (t, round) => {
    log(`closed loop, round ${round + 1}/${ROUNDS}: ${t.name}, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
    const run = await runLoad({ mode: 'closed', url: `${t.url}${PATH}`, headers: t.headers, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
      { upstream: upstream.proc, proxy: t.proc }, t.proc)
    checkLoad(t.name, 'closed loop', run.result)
    return run
  }, (run) => cpuMicros(run) ?? -run.result.rps)
  const closed = closedRounds.median

  // 3a. Peak memory: a closed loop at 256 connections, the naive proxy and keyvalet.
  const peak = new Map<TargetName, LoadRun>()
  for (const t of PHASES.has('peak') ? targets.filter((x) => x.name === 'naive' || x.name === 'keyvalet') : []) {
    log(`peak: ${t.name}, ${PEAK_CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
    const run = await runLoad({ mode: 'closed', url: `${t.url}${PATH}`, headers: t.headers, connections: PEAK_CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
      { upstream: upstream.proc, proxy: t.proc }, t.proc)
    checkLoad(t.name, `${PEAK_CONNECTIONS}-connection closed loop`, run.result)
    peak.set(t.name, run)
  }

  // 3b. What metrics and the request log line cost: keyvalet with them (the main one) and without, alternately.
  const observe: { on: number[]; off: number[] } = { on: [], off: [] }
  let observeOther = 0
  const kvTarget = targets.find((t) => t.name === 'keyvalet')
  if (PHASES.has('observe') && kvTarget !== undefined && tmp !== undefined) {
    const quietDir = join(tmp, 'quiet')
    mkdirSync(quietDir)
    let quiet: KeyvaletInstance | undefined
    try {
      quiet = await startKeyvalet({ children, repo: REPO, dir: quietDir, upstreamPort: upstream.port, nodeFlags: [], observability: false })
    } catch (err) {
      broken.push(`keyvalet without metrics did not start: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (quiet !== undefined) {
      const quietTarget: Target = { name: 'keyvalet', url: `${quiet.url}/echo`, headers: { authorization: `Bearer ${quiet.key}` }, proc: quiet.process }
      for (let round = 0; round < OBSERVE_ROUNDS; round++) {
        for (const [which, t] of [['on', kvTarget], ['off', quietTarget]] as const) {
          log(`observe round ${round + 1}/${OBSERVE_ROUNDS}: keyvalet with metrics and request log ${which}, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
          const run = await runLoad({ mode: 'closed', url: `${t.url}${PATH}`, headers: t.headers, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S }, { proxy: t.proc }, undefined)
          checkLoad('keyvalet', `observe ${which}`, run.result)
          if (which === 'on') observeOther += run.result.requests + run.result.warmupRequests
          const cpu = run.cpuPct['proxy']
          if (cpu !== undefined && run.result.rps > 0) observe[which].push((cpu / 100 / run.result.rps) * 1e6)
        }
      }
      const exit = await quiet.process.stop(10_000)
      if (exit.killed || exit.code !== 0) broken.push(`keyvalet without metrics did not stop cleanly (code ${exit.code}, signal ${exit.signal})`)
    }
  }

  // 3c. Workers: throughput of one keyvalet process and of two workers (start --workers 2), each fresh.
  const workerRuns: { workers: number; run: LoadRun; loadBefore: number; loadAfter: number }[] = []
  if (PHASES.has('workers') && tmp !== undefined) {
    for (const count of [1, 2]) {
      const dir = join(tmp, `workers-${count}`)
      mkdirSync(dir)
      let kvw: KeyvaletInstance | undefined
      try {
        kvw = await startKeyvalet({ children, repo: REPO, dir, upstreamPort: upstream.port, nodeFlags: [], workers: count })
      } catch (err) {
        broken.push(`keyvalet with ${count} workers did not start: ${err instanceof Error ? err.message : String(err)}`)
        continue
      }
      await new Promise((r) => setTimeout(r, 500))
      log(`workers: keyvalet with ${count} worker${count === 1 ? '' : 's'}, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
      const loadBefore = loadavg()[0] ?? 0
      const watch: Record<string, { pid: number }> = { upstream: upstream.proc, primary: kvw.process }
      kvw.workerPids.forEach((pid, i) => { watch[`worker ${i + 1}`] = { pid } })
      const run = await runLoad({ mode: 'closed', url: `${kvw.url}/echo${PATH}`, headers: { authorization: `Bearer ${kvw.key}` }, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S }, watch, undefined)
      checkLoad('keyvalet', `${count} workers`, run.result)
      workerRuns.push({ workers: count, run, loadBefore, loadAfter: loadavg()[0] ?? 0 })
      const exit = await kvw.process.stop(20_000)
      if (exit.killed || exit.code !== 0) broken.push(`keyvalet with ${count} workers did not stop cleanly (code ${exit.code}, signal ${exit.signal})`)
    }
  }

  // 4. Fixed low load, ~1,000 requests/s: paced open loop, then autocannon overallRate.
  const pacedRounds = await inRounds<TargetName, Target, LoadRun>(PHASES.has('fixed') ? ROUNDS : 0, targets, async (t, round) => {
    log(`fixed rate (paced open loop), round ${round + 1}/${ROUNDS}: ${t.name}, ${RATE} req/s, ${DURATION_S} s`)
    const run = await runLoad({ mode: 'paced', url: `${t.url}${PATH}`, headers: t.headers, connections: RATE_CONNECTIONS, rate: RATE, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: t.proc }, undefined)
    checkLoad(t.name, 'paced 1,000 req/s', run.result)
    return run
  }, (run) => run.result.latency.p99)
  const paced = pacedRounds.median
  const rated = new Map<TargetName, LoadRun>()
  for (const t of PHASES.has('fixed') ? targets : []) {
    log(`fixed rate (autocannon overallRate): ${t.name}, ${RATE} req/s, ${DURATION_S} s`)
    const run = await runLoad({ mode: 'rate', url: `${t.url}${PATH}`, headers: t.headers, connections: RATE_CONNECTIONS, rate: RATE, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: t.proc }, undefined)
    checkLoad(t.name, 'autocannon overallRate 1,000', run.result)
    rated.set(t.name, run)
  }

  // 4b. The idle pattern: each of 10 connections idles 10 ms after every answer (an agent's SDK).
  const thinkRounds = await inRounds<TargetName, Target, LoadRun>(PHASES.has('think') ? ROUNDS : 0, targets, async (t, round) => {
    log(`idle pattern, round ${round + 1}/${ROUNDS}: ${t.name}, ${RATE_CONNECTIONS} connections idling ${THINK_MS} ms between requests, ${DURATION_S} s`)
    const run = await runLoad({ mode: 'think', thinkMs: THINK_MS, url: `${t.url}${PATH}`, headers: t.headers, connections: RATE_CONNECTIONS, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: t.proc }, undefined)
    checkLoad(t.name, 'idle pattern', run.result)
    return run
  }, (run) => run.result.latency.p99)
  const think = thinkRounds.median

  // 5. Forward proxy: plain http in absolute form, intercepted https over kept-alive tunnels, mitmproxy beside it.
  const fwd = keyvalet?.forward
  /** keyvalet answers outside the load generators' counts (sanity checks, mint tunnels, event streams). */
  let kvOther = 0
  const forwardPlain = new Map<'closed' | 'paced', LoadRun>()
  const https = new Map<'direct' | 'keyvalet' | 'keyvalet h2' | 'mitmproxy' | 'mitmproxy h2', LoadRun>()
  let mitm: Mitmproxy | undefined
  /** Every round of keyvalet's intercepted HTTPS, HTTP/1.1 and HTTP/2. */
  let httpsRounds: Map<'keyvalet' | 'keyvalet h2', LoadRun[]> | undefined
  let mitmNote: string | undefined
  const plainTarget = `http://127.0.0.1:${upstream.port}${PATH}`
  const httpsTarget = `https://127.0.0.1:${upstream.ready.httpsPort}${PATH}`
  let forwardOk = fwd !== undefined && kv !== undefined
  if (NEEDS_FORWARD && fwd !== undefined && kv !== undefined) {
    try {
      kvOther += 2
      await forwardSanityCheck(fwd.url, keyvalet?.key ?? '', fwd.key, fwd.caPem, upstream.port, upstream.ready.httpsPort, upstream.ready.caPem)
    } catch (err) {
      forwardOk = false
      broken.push(`forward sanity check: ${err instanceof Error ? err.message : String(err)}`)
    }
  } else if (NEEDS_FORWARD) {
    broken.push('forward phases skipped: keyvalet has no forward listener')
  }
  if (PHASES.has('forward') && forwardOk && fwd !== undefined && kv !== undefined) {
    const fwdHeaders = { 'proxy-authorization': proxyBasic(keyvalet?.key ?? '') }
    log(`forward, plain http, closed loop: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
    const closedRun = await runLoad({ mode: 'closed', url: plainTarget, proxy: fwd.url, headers: fwdHeaders, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
      { upstream: upstream.proc, proxy: kv.proc }, kv.proc)
    checkLoad('keyvalet', 'forward plain closed loop', closedRun.result)
    forwardPlain.set('closed', closedRun)
    log(`forward, plain http, paced: ${RATE} req/s, ${DURATION_S} s`)
    const pacedRun = await runLoad({ mode: 'paced', url: plainTarget, proxy: fwd.url, headers: fwdHeaders, connections: RATE_CONNECTIONS, rate: RATE, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: kv.proc }, undefined)
    checkLoad('keyvalet', 'forward plain paced 1,000 req/s', pacedRun.result)
    forwardPlain.set('paced', pacedRun)

    log(`https, direct: undici, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
    const directHttps = await runLoad({ mode: 'undici', url: httpsTarget, ca: upstream.ready.caPem, headers: {}, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
      { upstream: upstream.proc }, undefined)
    checkLoad('direct', 'https closed loop', directHttps.result)
    https.set('direct', directHttps)
    // HTTP/1.1 and HTTP/2 through keyvalet in interleaved rounds (their CPU per request is compared:
    // issue 17's target), each round's ratio kept, the run of median CPU per request reported.
    const intercepted = await inRounds<'keyvalet' | 'keyvalet h2', { name: 'keyvalet' | 'keyvalet h2'; h2: boolean }, LoadRun>(ROUNDS, [{ name: 'keyvalet' as const, h2: false }, { name: 'keyvalet h2' as const, h2: true }], async ({ h2 }, round) => {
      log(`https through keyvalet's forward listener${h2 ? ' over HTTP/2' : ''}, round ${round + 1}/${ROUNDS}: undici ProxyAgent, ${h2 ? `${CONNECTIONS} concurrent streams on ${H2_TUNNELS} tunnels` : `${CONNECTIONS} tunnels`}, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
      const run = await runLoad({ mode: 'undici', url: httpsTarget, ca: fwd.caPem, tunnel: { proxy: fwd.url, token: proxyBasic(fwd.key) }, ...(h2 ? { h2Tunnels: H2_TUNNELS } : {}), headers: {}, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
        { upstream: upstream.proc, proxy: kv.proc }, kv.proc)
      checkLoad('keyvalet', `forward https${h2 ? ' over HTTP/2' : ''} closed loop`, run.result)
      return run
    }, (run) => cpuMicros(run) ?? Number.POSITIVE_INFINITY)
    for (const [name, run] of intercepted.median) https.set(name, run)
    httpsRounds = intercepted.all

    const version = mitmdumpVersion()
    if (version === undefined) {
      mitmNote = `mitmproxy not installed (mitmdump not on PATH): compared with the issue's figure of ${MITMPROXY_ISSUE_RPS.toLocaleString('en-US')} req/s only`
    } else {
      try {
        mitm = await startMitmproxy({ children, dir: tmp, upstreamCaFile, version })
        log(`https through mitmproxy ${version}: undici ProxyAgent, ${CONNECTIONS} tunnels, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
        const mitmRun = await runLoad({ mode: 'undici', url: httpsTarget, ca: mitm.caPem, tunnel: { proxy: mitm.url }, headers: {}, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
          { upstream: upstream.proc, proxy: mitm.process }, mitm.process)
        https.set('mitmproxy', mitmRun)
        if (mitmRun.result.ok2xx === 0 || mitmRun.result.errors > 0) mitmNote = `mitmproxy run had ${mitmRun.result.errors} errors: ${mitmRun.result.firstError ?? ''}`
        log(`https through mitmproxy ${version} over HTTP/2: undici ProxyAgent, ${CONNECTIONS} concurrent streams on ${H2_TUNNELS} tunnels, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
        const mitmH2 = await runLoad({ mode: 'undici', url: httpsTarget, ca: mitm.caPem, tunnel: { proxy: mitm.url }, h2Tunnels: H2_TUNNELS, headers: {}, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
          { upstream: upstream.proc, proxy: mitm.process }, mitm.process)
        https.set('mitmproxy h2', mitmH2)
        if (mitmH2.result.ok2xx === 0 || mitmH2.result.errors > 0) mitmNote = `${mitmNote === undefined ? '' : `${mitmNote}; `}mitmproxy HTTP/2 run had ${mitmH2.result.errors} errors: ${mitmH2.result.firstError ?? ''}`
      } catch (err) {
        mitmNote = `mitmproxy failed: ${err instanceof Error ? err.message : String(err)}`
      } finally {
        await mitm?.process.stop(5000)
      }
    }
  }

  // 6. Leaf minting on the first CONNECT to a host keyvalet has never seen.
  let mint: MintResult | undefined
  if (PHASES.has('mint') && forwardOk && fwd !== undefined) {
    log(`mint: ${upstream.ready.mintHosts.length} never-seen IP-literal hosts (${MINT_WARMUP} warm-up), two fresh tunnels each`)
    const proxyUrl = new URL(fwd.url)
    try {
      mint = await runWorker<MintJob, MintResult>('mint', 'mint.ts', {
        proxyHost: proxyUrl.hostname, proxyPort: Number(proxyUrl.port), token: proxyBasic(fwd.key), caPem: fwd.caPem,
        hosts: upstream.ready.mintHosts, warmupHosts: MINT_WARMUP, path: PATH, inProcessMints: 200,
      }, 120_000)
      kvOther += 2 * upstream.ready.mintHosts.length - 2 * mint.failures.length
      for (const f of mint.failures) broken.push(`mint: ${f}`)
    } catch (err) {
      broken.push(`mint: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  // 7. Many open event streams through the gateway, in a keyvalet of their own: started fresh, so its
  //    memory is the streams' and not what the load phases left in the heap of the first one.
  let sse: SseReport | undefined
  let sseNaive: SseReport | undefined
  let sseNaiveUndici: SseReport | undefined
  let sseAudit: { records: number; expected: number; output: string } | undefined
  if (PHASES.has('sse')) {
    log(`sse: fresh keyvalet; probe ${SSE_PROBE_STREAMS} streams on one connector, then ${SSE_STREAMS.toLocaleString('en-US')} streams over ${SSE_CONNECTORS} connectors (RLIMIT_NOFILE ${NOFILE.soft}/${NOFILE.hard})`)
    let sseKv: KeyvaletInstance | undefined
    const sseDir = join(tmp, 'sse')
    mkdirSync(sseDir)
    const memFile = join(sseDir, 'memory.jsonl')
    try {
      sseKv = await startKeyvalet({
        children, repo: REPO, dir: sseDir, upstreamPort: upstream.port, nodeFlags: [...NODE_FLAGS, '--import', join(BENCH, 'mem-probe.mjs')], extraEnv: { MEM_PROBE_FILE: memFile, MEM_PROBE_MS: '200' },
        forward: { httpsPort: upstream.ready.httpsPort, upstreamCaPem: upstream.ready.caPem, mintHosts: [], sseConnectors: SSE_CONNECTORS + 1 },
      })
      if (sseKv.forward === undefined) throw new Error('no second task key')
      await new Promise((r) => setTimeout(r, 500))
      const connectors = sseKv.forward.connectors.sse
      sse = await runSse({
        proc: sseKv.process, upstreamProc: upstream.proc, origin: sseKv.url, headers: { authorization: `Bearer ${sseKv.forward.key}` },
        paths: connectors.slice(0, SSE_CONNECTORS).map((c) => `/${c}/events`), probePath: `/${connectors[SSE_CONNECTORS] ?? ''}/events`, memFile,
      })
      const o = sse.open
      if (o.firstEvents !== o.asked) broken.push(`sse: ${int(o.firstEvents)} of ${int(o.asked)} streams got their first event (errors ${o.errors}, non-200 ${JSON.stringify(o.non200)}${o.firstError === undefined ? '' : `, first error: ${o.firstError}`})`)
      if (sse.upstreamBefore !== 0) broken.push(`sse probe: ${SSE_PROBE_STREAMS} streams on one connector, ${(sse.probe?.asked ?? 0) - (sse.probe?.firstEvents ?? 0)} of them waiting in keyvalet's pool; ${SSE_PROBE_SETTLE_MS / 1000} s after every probe client closed the upstream still held ${sse.upstreamBefore} streams open (requests keyvalet had queued were sent upstream after their clients left, and are never closed)`)
      const mainLeak = sse.upstreamAfterClose - sse.upstreamBefore
      if (mainLeak !== 0) broken.push(`sse: ${SSE_DRAIN_MS / 1000} s after every client of the main part closed, the upstream still held ${mainLeak} more event streams open than before it`)
    } catch (err) {
      broken.push(`sse: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      if (sseKv !== undefined) {
        const exit = await sseKv.process.stop(10_000)
        if (exit.killed || exit.code !== 0) broken.push(`sse keyvalet did not stop cleanly on SIGTERM (code ${exit.code}, signal ${exit.signal}${exit.killed ? ', needed SIGKILL' : ''})`)
        const { errorLogLines, firstErrorLog } = sseKv.process
        if (errorLogLines > 0) broken.push(`sse keyvalet logged ${errorLogLines} error line(s) (on SIGTERM), the first: ${firstErrorLog ?? ''}`)
        if (sse !== undefined) {
          try {
            const output = (await children.run('keyvalet audit verify (sse)', [join(REPO, 'src/cli/main.ts'), 'audit', 'verify', '--config', sseKv.configFile], { cwd: REPO, env: sseKv.env, timeoutMs: 60_000 })).trim()
            const records = Number(/ok: (\d+) records/.exec(output)?.[1] ?? Number.NaN)
            // An event stream gets an open record before its first byte and a closing record when it ends.
            sseAudit = { records, expected: 2 * ((sse.probe?.asked ?? 0) + sse.open.asked), output }
            if (records !== sseAudit.expected) broken.push(`sse audit: ${output}; expected ${sseAudit.expected} records (an open and a closing record per stream)`)
          } catch (err) {
            broken.push(`sse audit verify: ${err instanceof Error ? err.message : String(err)}`)
          }
        }
      }
    }
    // The same streams through each naive proxy (their upstream clients unlimited here), for scale:
    // node:http's Agent, and undici's Pool (keyvalet's client: the floor for a proxy built like it).
    for (const [name, file] of [['naive proxy', 'naive-proxy.ts'], ['naive undici proxy', 'naive-undici-proxy.ts']] as const) {
      log(`sse: the same ${SSE_STREAMS.toLocaleString('en-US')} streams through a fresh ${name}`)
      let naiveSse: { proc: Managed; port: number } | undefined
      try {
        naiveSse = await forkReady(`${name} (sse)`, file, [String(upstream.port), String(SSE_STREAMS + 1000), 'abort-on-close'])
        await new Promise((r) => setTimeout(r, 500))
        const report = await runSse({ proc: naiveSse.proc, upstreamProc: upstream.proc, origin: `http://127.0.0.1:${naiveSse.port}`, headers: {}, paths: ['/echo/sse/0/events'] })
        if (report.open.firstEvents !== report.open.asked) broken.push(`sse via ${name}: ${int(report.open.firstEvents)} of ${int(report.open.asked)} streams got their first event (${report.open.firstError ?? ''})`)
        if (file === 'naive-proxy.ts') sseNaive = report
        else sseNaiveUndici = report
      } catch (err) {
        broken.push(`sse via ${name}: ${err instanceof Error ? err.message : String(err)}`)
      } finally {
        await naiveSse?.proc.stop(5000)
      }
    }
  }

  // 8. Uploads.
  const uploads = new Map<TargetName, UploadRun>()
  const downloads = new Map<TargetName, UploadRun>()
  if (RUN_UPLOAD) {
    for (const t of targets) {
      log(`upload: ${t.name}, ${UPLOAD_BYTES / 1024 / 1024} MiB`)
      try {
        const run = await runUpload(t, t.proc)
        if (run.result.status !== 200 || run.result.upstreamBytes !== UPLOAD_BYTES) {
          broken.push(`${t.name} upload: status ${run.result.status}, upstream counted ${run.result.upstreamBytes ?? 'nothing'} of ${UPLOAD_BYTES} bytes (${run.result.responseText.slice(0, 200)})`)
        }
        uploads.set(t.name, run)
      } catch (err) {
        broken.push(`${t.name} upload: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    for (const t of targets) {
      log(`download: ${t.name}, ${UPLOAD_BYTES / 1024 / 1024} MiB`)
      try {
        const run = await runUpload(t, t.proc, 'download')
        if (run.result.status !== 200 || run.result.upstreamBytes !== UPLOAD_BYTES) {
          broken.push(`${t.name} download: status ${run.result.status}, received ${run.result.upstreamBytes ?? 'nothing'} of ${UPLOAD_BYTES} bytes`)
        }
        downloads.set(t.name, run)
      } catch (err) {
        broken.push(`${t.name} download: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }

  // 9. Stop keyvalet cleanly (that is when --cpu-prof writes the profile).
  let profile: ProfileSummary | undefined
  let profileCopy: string | undefined
  if (keyvalet !== undefined) {
    const exit = await keyvalet.process.stop(10_000)
    if (exit.killed || exit.code !== 0) broken.push(`keyvalet did not stop cleanly on SIGTERM (code ${exit.code}, signal ${exit.signal}${exit.killed ? ', needed SIGKILL' : ''})`)
    const { errorLogLines, firstErrorLog } = keyvalet.process
    if (errorLogLines > 0) broken.push(`keyvalet logged ${errorLogLines} error line(s), the first: ${firstErrorLog ?? ''}`)
    if (PROFILE) {
      try {
        ({ summary: profile, file: profileCopy } = keptProfile(profileDir, 'keyvalet.cpuprofile'))
      } catch (err) {
        broken.push(`profile: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }
  // 10. Every request keyvalet answered must be in an intact audit chain.
  let auditCheck: { records: number; counted: number; slack: number; verifyS: number; output: string } | undefined
  if (keyvalet !== undefined) {
    const kvRuns = [...[closedRounds, pacedRounds, thinkRounds].flatMap((r) => r.all.get('keyvalet') ?? []), peak.get('keyvalet'), rated.get('keyvalet'), forwardPlain.get('closed'), forwardPlain.get('paced'), ...(httpsRounds?.get('keyvalet') ?? []), ...(httpsRounds?.get('keyvalet h2') ?? [])].filter((r) => r !== undefined)
    const counted = 2 + kvOther + observeOther + kvRuns.reduce((a, r) => a + r.result.requests + r.result.warmupRequests, 0) + (uploads.has('keyvalet') ? 1 : 0) + (downloads.has('keyvalet') ? 1 : 0)
    // autocannon stops with requests in flight: served and audited, but not counted (≤ connections, twice with warm-up).
    // A transfer in flight longer than audit.open_after_ms (1 s) gets an open record too.
    const transfers = (uploads.has('keyvalet') ? 1 : 0) + (downloads.has('keyvalet') ? 1 : 0)
    const slack = (kvRuns.filter((r) => r.result.mode === 'closed' || r.result.mode === 'rate').length + observe.on.length) * 2 * CONNECTIONS + (peak.has('keyvalet') ? 2 * (PEAK_CONNECTIONS - CONNECTIONS) : 0) + transfers
    const t0 = process.hrtime.bigint()
    try {
      const output = await children.run('keyvalet audit verify', [join(REPO, 'src/cli/main.ts'), 'audit', 'verify', '--config', keyvalet.configFile], { cwd: REPO, env: keyvalet.env, timeoutMs: 120_000 })
      const verifyS = Number(process.hrtime.bigint() - t0) / 1e9
      const m = /ok: (\d+) records/.exec(output)
      const records = m === null ? Number.NaN : Number(m[1])
      auditCheck = { records, counted, slack, verifyS, output: output.trim() }
      if (!(records >= counted && records <= counted + slack)) broken.push(`audit: ${output.trim()}; expected between ${counted} and ${counted + slack} records`)
    } catch (err) {
      broken.push(`audit verify: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  for (const c of children.crashes) broken.push(c)

  // ------------------------------------------------------------ report
  const out: string[] = []
  const p = (s = ''): void => void out.push(s)
  const direct = closed.get('direct')?.result
  const naiveR = closed.get('naive')?.result
  const undiciR = closed.get('naive-undici')?.result
  const kvR = closed.get('keyvalet')?.result
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b === 0 ? undefined : a / b)

  p(`keyvalet benchmark — ${startedAt.toISOString()}`)
  p(`machine: ${machine.platform}, ${machine.cpus} CPUs (${machine.cpuModel}), ${f(machine.memGiB, 1)} GiB RAM, Node ${machine.node}, data dir on ${machine.tmpFs}`)
  p(`setup: upstream, proxy under test and load generator in separate processes, all on 127.0.0.1 (${machine.cpus} cores shared by 3 busy processes)`)
  p(`       keyvalet with every check on: SQLite task-key lookup, policy, vault open (AES-GCM), injection, response redaction, hash-chained audit (SQLite WAL, group commit, audit.fsync off: the default, so written on the proxy's thread)`)
  p()
  if (PHASES.has('closed')) {
    p(`1. Closed loop: ${CONNECTIONS} connections, ${DURATION_S} s after ${WARMUP_S} s warm-up (autocannon), GET ${PATH}, ~120-byte JSON answer`)
    p(table(['target', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'non-2xx', 'CPU upstream', 'CPU proxy', 'proxy CPU µs/req', 'CPU loadgen'],
      targets.map((t) => {
        const run = closed.get(t.name)
        const r = run?.result
        const proxyCpu = run?.cpuPct['proxy']
        return [t.name, int(r?.rps), f(r?.latency.p50), f(r?.latency.p99), f(r?.latency.p999), int(r === undefined ? undefined : r.errors + r.timeouts), int(r?.non2xx),
          `${int(run?.cpuPct['upstream'])} %`, t.proc === undefined ? '—' : `${int(proxyCpu)} %`,
          t.proc === undefined || proxyCpu === undefined || r === undefined ? '—' : int((proxyCpu / 100 / r.rps) * 1e6), `${int(run?.cpuPct['loadgen'])} %`]
      })))
    p(`  ratios (req/s): keyvalet/direct ${f(ratio(kvR?.rps, direct?.rps))}×   keyvalet/naive ${f(ratio(kvR?.rps, naiveR?.rps))}×   keyvalet/naive-undici ${f(ratio(kvR?.rps, undiciR?.rps))}×   naive/direct ${f(ratio(naiveR?.rps, direct?.rps))}×   naive-undici/naive ${f(ratio(undiciR?.rps, naiveR?.rps))}×`)
    const cpuPerRequest = (name: TargetName): number | undefined => cpuMicros(closed.get(name))
    p(`  CPU per request: keyvalet/naive ${f(ratio(cpuPerRequest('keyvalet'), cpuPerRequest('naive')))}×   keyvalet/naive-undici ${f(ratio(cpuPerRequest('keyvalet'), cpuPerRequest('naive-undici')))}×   keyvalet's own work over the undici floor ${signed(cpuPerRequest('keyvalet') !== undefined && cpuPerRequest('naive-undici') !== undefined ? (cpuPerRequest('keyvalet') as number) - (cpuPerRequest('naive-undici') as number) : undefined)} µs`)
    p(`  latency vs direct: naive p50 ${signed(naiveR && direct && naiveR.latency.p50 - direct.latency.p50)} ms, p99 ${signed(naiveR && direct && naiveR.latency.p99 - direct.latency.p99)} ms;` +
      ` keyvalet p50 ${signed(kvR && direct && kvR.latency.p50 - direct.latency.p50)} ms, p99 ${signed(kvR && direct && kvR.latency.p99 - direct.latency.p99)} ms`)
    p(`  (latencies at full resolution; autocannon's own whole-ms histogram gave p50/p99: ${targets.map((t) => `${t.name} ${closed.get(t.name)?.result.autocannonLatency?.p50 ?? '—'}/${closed.get(t.name)?.result.autocannonLatency?.p99 ?? '—'}`).join(', ')})`)
    p(`  ${ROUNDS} rounds, targets interleaved; the table shows each target's round of median CPU µs per request (direct: median req/s). Every round, req/s @ CPU µs/req:`)
    for (const t of targets) p(`    ${t.name.padEnd(13)} ${(closedRounds.all.get(t.name) ?? []).map((run) => `${int(run.result.rps)} @ ${f(cpuMicros(run), 0)}`).join('   ')}`)
    p()
  }
  if (PHASES.has('observe')) {
    const median = (xs: readonly number[]): number | undefined => {
      if (xs.length === 0) return undefined
      const sorted = [...xs].sort((a, b) => a - b)
      const mid = sorted.length >> 1
      return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
    }
    const on = median(observe.on)
    const off = median(observe.off)
    p(`1b. Metrics and the request log line: keyvalet as configured by default (metrics on, one log line per request to stdout) and a second keyvalet with metrics.enabled false and log.level error,`)
    p(`    the closed loop of 1. against each in alternation, ${OBSERVE_ROUNDS} rounds; keyvalet's CPU µs per request (median of the rounds)`)
    p(`  on:  ${observe.on.map((x) => f(x, 1)).join(', ')} µs → ${f(on, 1)} µs`)
    p(`  off: ${observe.off.map((x) => f(x, 1)).join(', ')} µs → ${f(off, 1)} µs`)
    p(`  on/off: ${f(ratio(on, off), 3)}× (goal ≤ 1.05×)`)
    p()
  }
  if (PHASES.has('workers')) {
    const one = workerRuns.find((w) => w.workers === 1)?.run.result.rps
    p(`1c. Workers: keyvalet start (1 process) and start --workers 2 (node:cluster: a primary that accepts and hands connections out, two workers), the closed loop of 1. (${CONNECTIONS} connections);`)
    p(`    on this ${cpus().length}-core machine the load generator, the upstream and keyvalet's processes share the cores: their CPU (100 % = one core) says who used them`)
    p(table(['keyvalet', 'req/s', 'vs 1 worker', 'p50 ms', 'p99 ms', 'CPU by process', 'load avg before/after'], workerRuns.map(({ workers, run, loadBefore, loadAfter }) => [
      workers === 1 ? '1 process' : `${workers} workers`, int(run.result.rps), `${f(ratio(run.result.rps, one), 2)}×`, f(run.result.latency.p50, 3), f(run.result.latency.p99, 3),
      Object.entries(run.cpuPct).map(([k, v]) => `${k} ${int(v)} %`).join(', '), `${f(loadBefore, 1)} / ${f(loadAfter, 1)}`,
    ])))
    p()
  }
  const fixedTable = (runs: Map<TargetName, LoadRun>): string => {
    const d = runs.get('direct')?.result
    return table(['target', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'Δp50 vs direct', 'Δp99 vs direct', 'errors', 'non-2xx', 'CPU proxy'],
      targets.map((t) => {
        const run = runs.get(t.name)
        const r = run?.result
        return [t.name, int(r?.rps), f(r?.latency.p50, 3), f(r?.latency.p99, 3), f(r?.latency.p999, 3), f(r?.latency.max, 1),
          t.name === 'direct' ? '' : `${signed(r && d && r.latency.p50 - d.latency.p50, 3)} ms`,
          t.name === 'direct' ? '' : `${signed(r && d && r.latency.p99 - d.latency.p99, 3)} ms`,
          int(r === undefined ? undefined : r.errors + r.timeouts), int(r?.non2xx), t.proc === undefined ? '—' : `${int(run?.cpuPct['proxy'])} %`]
      }))
  }
  const lag = paced.get('direct')?.result.schedulerLagMs
  if (PHASES.has('fixed')) {
    p(`2a. Fixed load ${RATE.toLocaleString('en-US')} req/s, paced open loop (evenly spaced sends, undici pool of ${RATE_CONNECTIONS} connections), ${DURATION_S} s — the steady-rate measurement`)
    p(fixedTable(paced))
    p(`  ${ROUNDS} rounds, targets interleaved; the table shows each target's round of median p99. Every round, p50 / p99 ms:`)
    for (const t of targets) p(`    ${t.name.padEnd(13)} ${(pacedRounds.all.get(t.name) ?? []).map((run) => `${f(run.result.latency.p50, 3)} / ${f(run.result.latency.p99, 3)}`).join('   ')}`)
    p(`  generator self-check: send lag p99 ${f(lag?.p99, 3)} ms, max ${f(lag?.max, 1)} ms (timer granularity; latency is timed from each actual send)`)
    p()
    p(`2b. Fixed load ${RATE.toLocaleString('en-US')} req/s, autocannon overallRate, ${RATE_CONNECTIONS} connections, ${DURATION_S} s — for reference`)
    p(fixedTable(rated))
    p(`  NB autocannon paces per connection per second: each second every connection sends its ${RATE / RATE_CONNECTIONS} requests back to back,`)
    p(`  then idles, so these are ${RATE_CONNECTIONS}-way concurrent bursts rather than a steady rate.`)
    p()
  }
  if (PHASES.has('think')) {
    p(`2c. Idle pattern: ${RATE_CONNECTIONS} keep-alive connections, each idling ${THINK_MS} ms after every answer before its next request (the pattern an agent's SDK makes: every request wakes the proxy), ${DURATION_S} s`)
    p(fixedTable(think))
    p(`  ${ROUNDS} rounds, targets interleaved; the table shows each target's round of median p99. Every round, p50 / p99 ms:`)
    for (const t of targets) p(`    ${t.name.padEnd(13)} ${(thinkRounds.all.get(t.name) ?? []).map((run) => `${f(run.result.latency.p50, 3)} / ${f(run.result.latency.p99, 3)}`).join('   ')}`)
    p()
  }
  // Memory peaks over every round, not the median one's.
  const highest = (name: TargetName): RssSummary | undefined => (closedRounds.all.get(name) ?? []).map((r) => r.rss).filter((r) => r !== undefined).sort((a, b) => b.peakMiB - a.peakMiB)[0]
  const kvLoad = highest('keyvalet')
  const naiveLoad = highest('naive')
  if (PHASES.has('closed')) {
    p(`3. Resident memory (VmRSS), sampled every 100 ms, the highest round; VmHWM = the kernel's peak over the same window`)
    p(table(['process', 'idle before load MiB', `peak under ${CONNECTIONS}-connection load MiB`, 'VmHWM MiB', 'samples'], [
      ['keyvalet', f(idleRssMiB, 1), f(kvLoad?.peakMiB, 1), f(kvLoad?.hwmMiB, 1), int(kvLoad?.samples)],
      ['naive proxy (baseline)', f(naiveIdleRssMiB, 1), f(naiveLoad?.peakMiB, 1), f(naiveLoad?.hwmMiB, 1), int(naiveLoad?.samples)],
    ]))
    p()
  }
  const peakOf = (r: LoadRun | undefined): number | undefined => (r?.rss === undefined ? undefined : Math.max(r.rss.peakMiB, r.rss.hwmMiB ?? 0))
  const cpuUsPerRequest = (r: LoadRun | undefined): number | undefined => (r === undefined || r.cpuPct['proxy'] === undefined || r.result.rps <= 0 ? undefined : (r.cpuPct['proxy'] / 100 / r.result.rps) * 1e6)
  const kvPeak = peakOf(peak.get('keyvalet'))
  if (PHASES.has('peak')) {
    p(`3a. Peak resident memory under a ${PEAK_CONNECTIONS}-connection closed loop (VmRSS sampled every 100 ms, or VmHWM when higher), ${DURATION_S} s${NODE_FLAGS.length === 0 ? '' : `; keyvalet's node flags: ${NODE_FLAGS.join(' ')}`}`)
    p(table(['process', 'idle before load MiB', 'peak MiB', 'req/s', 'CPU µs/request'], [...peak].map(([name, r]) => [
      name === 'naive' ? 'naive proxy (baseline)' : name, f(name === 'keyvalet' ? idleRssMiB : naiveIdleRssMiB, 1), f(peakOf(r), 1), int(r.result.rps), f(cpuUsPerRequest(r), 0)])))
    p()
  }
  const kvUp = uploads.get('keyvalet')
  const dUp = uploads.get('direct')
  const growth = (u: UploadRun | undefined): number | undefined => (u?.rss === undefined || u.rssBeforeMiB === undefined ? undefined : Math.max(u.rss.peakMiB, u.rss.hwmMiB ?? 0) - u.rssBeforeMiB)
  const uploadGrowth = growth(kvUp)
  const downloadGrowth = growth(downloads.get('keyvalet'))
  if (!RUN_UPLOAD) {
    p(`4. Upload: skipped (${SKIP_UPLOAD ? 'BENCH_SKIP_UPLOAD=1' : 'BENCH_PHASES'})`)
  } else {
    p(`4. Upload: PUT /upload, ${f(UPLOAD_BYTES / 1024 ** 3, 2)} GiB streamed body (content-length, 256 KiB chunks generated on the fly)`)
    p(table(['target', 'seconds', 'MiB/s', 'vs direct', 'upstream counted', 'RSS before MiB', 'RSS peak MiB', 'RSS growth MiB'],
      targets.map((t) => {
        const u = uploads.get(t.name)
        const peak = u?.rss === undefined ? undefined : Math.max(u.rss.peakMiB, u.rss.hwmMiB ?? 0)
        return [t.name, f(u?.result.seconds), int(u?.result.mibPerS), t.name === 'direct' ? '' : `${f(ratio(u?.result.mibPerS, dUp?.result.mibPerS))}×`,
          u === undefined ? '—' : u.result.upstreamBytes === UPLOAD_BYTES ? `${int(u.result.upstreamBytes)} (exact)` : `${int(u.result.upstreamBytes)} (WRONG)`,
          f(u?.rssBeforeMiB, 1), f(peak, 1), signed(peak === undefined || u?.rssBeforeMiB === undefined ? undefined : peak - u.rssBeforeMiB, 1)]
      })))
    const dDown = downloads.get('direct')
    p(`4b. Download: GET …/items/download/N, ${f(UPLOAD_BYTES / 1024 ** 3, 2)} GiB streamed answer (content-length, 256 KiB chunks), counted and dropped by the client`)
    p(table(['target', 'seconds', 'MiB/s', 'vs direct', 'received', 'RSS before MiB', 'RSS peak MiB', 'RSS growth MiB'],
      targets.map((t) => {
        const u = downloads.get(t.name)
        const peak = u?.rss === undefined ? undefined : Math.max(u.rss.peakMiB, u.rss.hwmMiB ?? 0)
        return [t.name, f(u?.result.seconds), int(u?.result.mibPerS), t.name === 'direct' ? '' : `${f(ratio(u?.result.mibPerS, dDown?.result.mibPerS))}×`,
          u === undefined ? '—' : u.result.upstreamBytes === UPLOAD_BYTES ? `${int(u.result.upstreamBytes)} (exact)` : `${int(u.result.upstreamBytes)} (WRONG)`,
          f(u?.rssBeforeMiB, 1), f(peak, 1), signed(growth(u), 1)]
      })))
  }
  p()
  const worst = policy?.decide[0]
  const miss = policy?.decide[1]
  if (PHASES.has('policy')) {
    p(`5. Policy, in-process: one connector with ${policy?.rules ?? 1000} rules (parsed by parseConfig in ${f(policy?.parseMs, 0)} ms)`)
    if (policy !== undefined) {
      p(table(['case', 'result', 'iterations', 'µs/call (median of 5 rounds)', 'min µs'],
        [...policy.decide, ...policy.normalisePath].map((c) => [c.name, c.got.length > 40 ? `${c.got.slice(0, 37)}...` : c.got, int(c.iterations), f(c.usPerOp, 3), f(c.minUsPerOp, 3)]), 2))
    }
    p()
  }
  if (PHASES.has('budget') && budget !== undefined) {
    p('5a. Budget check, in-process: the budget stage per request on a real SQLite store (target: at most 10 µs)')
    p(table(['case', 'iterations', 'µs/request (median of 5 rounds)', 'min µs'], budget.cases.map((c) => [c.name, int(c.iterations), f(c.usPerOp, 3), f(c.minUsPerOp, 3)]), 2))
    p()
  }
  if (PHASES.has('store') && store !== undefined) {
    const base = store.costs[0]
    p(`5c. Store, in-process (keyvalet, upstream and ${16} clients in one process): a gateway request, ${int(store.requests)} per store and round, median of ${store.rounds} rounds`)
    p(table(['store', 'req/s', 'vs SQLite', 'p50 ms', 'p99 ms'], store.costs.map((c) => [c.store, int(c.rps), `${f(ratio(c.rps, base?.rps))}×`, f(c.latency.p50, 3), f(c.latency.p99, 3)]), 2))
    const pr = store.propagation
    p(`   revocation propagation: ${pr.revocations} revocations through one of ${pr.instances} instances, until both others refuse: median ${f(pr.medianMs, 2)} ms, p90 ${f(pr.p90Ms, 2)} ms, max ${f(pr.maxMs, 2)} ms (targets: median < 100 ms, max < 1000 ms)`)
    const fl = store.fleet
    const cores = (c: { readonly [name: string]: number }): string => Object.entries(c).map(([name, n]) => `${name} ${f(n, 2)}`).join(', ')
    p(`   1 vs 2 instances on one PostgreSQL (each a keyvalet start process; ${int(fl.requests)} requests from 16 clients per round, median of ${fl.rounds}; ${fl.cpus} cores shared by all):`)
    p(table(['instances', 'req/s', 'vs 1 instance', 'cores used by process'], [fl.one, fl.two].map((r) => [String(r.instances), int(r.rps), `${f(ratio(r.rps, fl.one.rps), 2)}×`, cores(r.cores)]), 2))
    p()
  }
  if (PHASES.has('push') && push !== undefined) {
    p(`5d. Pushed policy propagation: ${push.pushes} pushes (keyvalet config push's row, MACed) until both of ${push.instances} PostgreSQL instances serve under each: median ${f(push.medianMs, 2)} ms, max ${f(push.maxMs, 2)} ms (target: max < 1000 ms)`)
    p()
  }
  if (PHASES.has('mcp') && mcp !== undefined) {
    p(`5b. MCP, in-process: tools/call decided against ${mcp.toolRules} tool rules (each with an argument schema), ${mcp.argumentBytes}-byte arguments (target: at most 20 µs per decision)`)
    p(table(['case', 'result', 'iterations', 'µs/call (median of 5 rounds)', 'min µs'], mcp.decide.map((c) => [c.name, c.got, int(c.iterations), f(c.usPerOp, 3), f(c.minUsPerOp, 3)]), 2))
    p(`   an event from the server's write to the client's read (server, keyvalet and client in one process; target: the first within 1 ms)`)
    p(table(['path', 'first event ms', 'p50 ms', 'p99 ms', 'max ms', 'events'], mcp.events.map((e) => [e.name, f(e.first, 3), f(e.summary.p50, 3), f(e.summary.p99, 3), f(e.summary.max, 3), int(e.summary.count)]), 1))
    p()
  }

  const dPacedR = paced.get('direct')?.result

  if (PHASES.has('grpc') && grpcResult !== undefined) {
    p(`5c. ${formatGrpc(grpcResult, table).join('\n')}`)
    if (grpcRounds.length > 1) {
      p(`  ${grpcRounds.length} rounds (a keyvalet each); the table shows the round of median CPU per call. Every round, keyvalet CPU µs/call sequential | 16 in flight, added p50 / p99 ms:`)
      for (const r of grpcRounds) p(`    ${int(r.keyvaletCpuUsPerCall)} | ${int(r.concurrent.keyvaletCpuUsPerCall)}   +${f(r.keyvalet.p50 - r.direct.p50, 3)} / +${f(r.keyvalet.p99 - r.direct.p99, 3)}`)
    }
    if (grpcProfile !== undefined) {
      p(`  keyvalet CPU profile of the measured calls only (BENCH_PROFILE=1; the profiler slows keyvalet, so the CPU per call above is not comparable). Full profile: ${grpcProfile.file}`)
      p(formatProfile(grpcProfile.summary))
    }
    p()
  }
  // Forward proxy, plain http.
  const fClosed = forwardPlain.get('closed')
  const fPaced = forwardPlain.get('paced')
  const fwdDp50 = fPaced && dPacedR ? fPaced.result.latency.p50 - dPacedR.latency.p50 : undefined
  const fwdDp99 = fPaced && dPacedR ? fPaced.result.latency.p99 - dPacedR.latency.p99 : undefined
  if (PHASES.has('forward')) {
    p(`6. Forward proxy, plain http: absolute-form GET http://127.0.0.1:PORT${PATH} to keyvalet's forward listener (Proxy-Authorization: Basic task:KEY),`)
    p(`   same upstream, same connector and pipeline as the gateway; direct and gateway rows are phases 1 and 2a of this run`)
    const rows: [string, LoadRun | undefined, LoadRun | undefined, Managed | undefined][] = [
      ['direct', closed.get('direct'), paced.get('direct'), undefined],
      ['keyvalet gateway', closed.get('keyvalet'), paced.get('keyvalet'), kv?.proc],
      ['keyvalet forward', fClosed, fPaced, kv?.proc],
    ]
    p(table(['target', `req/s (${CONNECTIONS} conn.)`, 'p50 ms', 'p99 ms', 'CPU proxy', 'proxy CPU µs/req', `paced ${RATE.toLocaleString('en-US')}/s p50 ms`, 'p99 ms', 'Δp50 vs direct', 'Δp99 vs direct', 'errors', 'non-2xx'],
      rows.map(([name, c, pc, proc]) => {
        const r = c?.result
        const pr = pc?.result
        const proxyCpu = c?.cpuPct['proxy']
        const ran = r !== undefined || pr !== undefined
        const bad = ran ? [r, pr].reduce((a, x) => a + (x === undefined ? 0 : x.errors + x.timeouts), 0) : undefined
        const non2xx = ran ? [r, pr].reduce((a, x) => a + (x?.non2xx ?? 0), 0) : undefined
        return [name, int(r?.rps), f(r?.latency.p50), f(r?.latency.p99), proc === undefined ? '—' : `${int(proxyCpu)} %`,
          proc === undefined || proxyCpu === undefined || r === undefined ? '—' : int((proxyCpu / 100 / r.rps) * 1e6),
          f(pr?.latency.p50, 3), f(pr?.latency.p99, 3),
          name === 'direct' ? '' : `${signed(pr && dPacedR && pr.latency.p50 - dPacedR.latency.p50, 3)} ms`,
          name === 'direct' ? '' : `${signed(pr && dPacedR && pr.latency.p99 - dPacedR.latency.p99, 3)} ms`,
          int(bad), int(non2xx)]
      })))
    p(`  ratios (req/s, closed loop): forward/gateway ${f(ratio(fClosed?.result.rps, kvR?.rps))}×   forward/direct ${f(ratio(fClosed?.result.rps, direct?.rps))}×   (autocannon with an absolute-form request line; paced: undici Pool to the proxy, absolute-form path)`)
    p()
  }

  // Forward proxy, intercepted https.
  const hD = https.get('direct')
  const hK = https.get('keyvalet')
  const hK2 = https.get('keyvalet h2')
  const hM = https.get('mitmproxy')
  const hM2 = https.get('mitmproxy h2')
  const vsMitm = ratio(hK?.result.rps, hM?.result.rps)
  const vsIssue = ratio(hK?.result.rps, MITMPROXY_ISSUE_RPS)
  if (PHASES.has('forward')) {
    p(`7. Forward proxy, intercepted https: GET https://127.0.0.1:PORT${PATH} (upstream leaf from a bench CA, trusted by keyvalet via ca_file), closed loop,`)
    p(`   ${CONNECTIONS} connections, ${DURATION_S} s after ${WARMUP_S} s warm-up, keep-alive requests over kept tunnels; same client (undici) in every row`)
    p(table(['target', 'client', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'non-2xx', 'connections opened', 'CPU upstream', 'CPU proxy', 'proxy CPU µs/req', 'CPU loadgen'],
      ([['direct https', 'undici Agent', hD, false], ['keyvalet forward, HTTP/1.1', 'undici ProxyAgent', hK, true], ['keyvalet forward, HTTP/2', `undici ProxyAgent, h2, ≤ ${H2_TUNNELS} tunnels`, hK2, true],
        [`mitmproxy ${mitm?.version ?? ''}, HTTP/1.1`.trim(), 'undici ProxyAgent', hM, true], [`mitmproxy ${mitm?.version ?? ''}, HTTP/2`.trim(), `undici ProxyAgent, h2, ≤ ${H2_TUNNELS} tunnels`, hM2, true]] as const).map(([name, client, run, proxied]) => {
        const r = run?.result
        const proxyCpu = run?.cpuPct['proxy']
        return [name, client, int(r?.rps), f(r?.latency.p50), f(r?.latency.p99), f(r?.latency.p999), int(r === undefined ? undefined : r.errors + r.timeouts), int(r?.non2xx),
          r?.connectionsOpened === undefined ? '—' : `${int(r.connectionsOpened)} ${proxied ? 'tunnels' : 'TLS'}`,
          `${int(run?.cpuPct['upstream'])} %`, proxied ? `${int(proxyCpu)} %` : '—',
          !proxied || proxyCpu === undefined || r === undefined ? '—' : int((proxyCpu / 100 / r.rps) * 1e6), `${int(run?.cpuPct['loadgen'])} %`]
      })))
    p(`  ratios (req/s): keyvalet/direct https ${f(ratio(hK?.result.rps, hD?.result.rps))}×   keyvalet/mitmproxy (measured here) ${f(vsMitm)}×   keyvalet/${MITMPROXY_ISSUE_RPS.toLocaleString('en-US')} req/s (the issue's mitmproxy figure) ${f(vsIssue)}×`)
    const perRequest = (run: LoadRun | undefined): number | undefined => (run?.cpuPct['proxy'] === undefined || run.result.rps === 0 ? undefined : (run.cpuPct['proxy'] / 100 / run.result.rps) * 1e6)
    p(`  HTTP/2 (${CONNECTIONS} streams on ${H2_TUNNELS} tunnels) vs HTTP/1.1 (${CONNECTIONS} tunnels): req/s ${f(ratio(hK2?.result.rps, hK?.result.rps))}×, keyvalet CPU per request ${f(ratio(perRequest(hK2), perRequest(hK)))}× (below 1: cheaper);`)
    const h1Rounds = httpsRounds?.get('keyvalet') ?? []
    const h2Rounds = httpsRounds?.get('keyvalet h2') ?? []
    if (h1Rounds.length > 1) p(`    each round, HTTP/2 / HTTP/1.1 CPU per request (µs): ${h1Rounds.map((r1, i) => `${f(perRequest(h2Rounds[i]), 0)}/${f(perRequest(r1), 0)} = ${f(ratio(perRequest(h2Rounds[i]), perRequest(r1)))}×`).join(', ')}; the rows above are each target's median round`)
    p(`    mitmproxy: req/s ${f(ratio(hM2?.result.rps, hM?.result.rps))}×, CPU per request ${f(ratio(perRequest(hM2), perRequest(hM)))}×;   keyvalet/mitmproxy over HTTP/2: req/s ${f(ratio(hK2?.result.rps, hM2?.result.rps))}×, CPU per request ${f(ratio(perRequest(hK2), perRequest(hM2)))}×`)
    p(`  latency vs direct https: keyvalet p50 ${signed(hK && hD && hK.result.latency.p50 - hD.result.latency.p50)} ms, p99 ${signed(hK && hD && hK.result.latency.p99 - hD.result.latency.p99)} ms`)
    if (mitmNote !== undefined) p(`  NB ${mitmNote}`)
    if (hK?.result.firstError !== undefined) p(`  keyvalet first error: ${hK.result.firstError}`)
    p()
  }

  // Leaf minting.
  if (PHASES.has('mint')) {
    p(`8. Leaf minting: first CONNECT to a host keyvalet has never seen (IP literals 127.0.0.2…, one https connector each), ${mint?.hosts ?? 0} hosts after ${MINT_WARMUP} warm-up hosts;`)
    p(`   per host two fresh tunnels in a row (TCP, CONNECT, TLS against keyvalet's CA, one GET with Connection: close); medians (p90) in ms`)
    if (mint !== undefined) {
      const cell = (x: { median: number; p90: number }): string => `${f(x.median, 3)} (${f(x.p90, 3)})`
      p(table(['tunnel', 'CONNECT → 200', 'TLS handshake', 'GET → response', 'total'], [
        ['1st: never-seen host (mints the leaf)', cell(mint.first.connectMs), cell(mint.first.tlsMs), cell(mint.first.requestMs), cell(mint.first.totalMs)],
        ['2nd: same host again (cached leaf)', cell(mint.second.connectMs), cell(mint.second.tlsMs), cell(mint.second.requestMs), cell(mint.second.totalMs)],
      ]))
      p(`  added by the new host, paired per host: CONNECT → TLS up ${f(mint.addedHandshakeMs.median, 3)} ms median (p90 ${f(mint.addedHandshakeMs.p90, 3)}, max ${f(mint.addedHandshakeMs.max, 3)}) — the leaf minting;`)
      p(`  whole first request ${f(mint.addedTotalMs.median, 3)} ms median (p90 ${f(mint.addedTotalMs.p90, 3)}), which also includes keyvalet's first TLS connection to that new upstream`)
      p(`  in-process reference: LeafCache.secureContextFor on a fresh host (issueLeaf + createSecureContext), ${mint.inProcessMintMs.count} hosts: median ${f(mint.inProcessMintMs.median, 3)} ms, p90 ${f(mint.inProcessMintMs.p90, 3)}, max ${f(mint.inProcessMintMs.max, 3)}`)
      const uc = mint.upstreamContextMs
      p(`  reference for the rest of the first request: building a TLS context from the ${uc.roots} system roots plus a connector's ca_file costs ${f(uc.rootsPlusCaFile.median, 3)} ms`)
      p(`  (system store only: ${f(uc.systemDefault.median, 3)} ms); keyvalet builds it once per connector when it starts, not per connection or request`)
    } else {
      p('  (no result)')
    }
    p()
  }

  // Event streams.
  /** The target's figure: peak RSS from before the probe until the close was asked for (VmHWM catches peaks between samples). */
  const peakOpen = (r: SseReport | undefined): number | undefined => (r === undefined ? undefined : Math.max(r.rss.peakMiB, r.rss.hwmMiB ?? 0))
  const ssePeak = peakOpen(sse)
  if (PHASES.has('sse')) {
    p(`9. Open event streams (SSE) through the gateway: ${SSE_STREAMS.toLocaleString('en-US')} concurrent GET /sse-N/events from one client process (undici), the upstream holds each open,`)
    p(`   one event at once and one every 3 s; held ${SSE_HOLD_MS / 1000} s, then all closed. Each proxy freshly started for this, so its RSS growth is the streams'`)
    if (SSE_STREAMS < SSE_WANTED) p(`  NB lowered from ${SSE_WANTED.toLocaleString('en-US')}: RLIMIT_NOFILE is ${NOFILE.soft}/${NOFILE.hard} (soft/hard; raising it is not permitted here) and a proxy holds 2 descriptors per stream; ${SSE_STREAMS.toLocaleString('en-US')} fit`)
    const pr = sse?.probe
    if (sse !== undefined && pr !== undefined) {
      p(`  probe, one connector: ${pr.asked} streams at once → ${pr.firstEvents} got their first event within ${SSE_PROBE_WAIT_MS / 1000} s, ${pr.asked - pr.firstEvents} waited in keyvalet (its upstream pool allows 1,024 connections per connector);`)
      p(`    ${SSE_PROBE_SETTLE_MS / 1000} s after the ${pr.asked} clients closed, the upstream still held ${sse.upstreamBefore} streams open`)
      p(`  so keyvalet's ${SSE_STREAMS.toLocaleString('en-US')} streams are spread over ${sse.paths} connectors sse-0…sse-${sse.paths - 1} (≤ ${SSE_PER_CONNECTOR} each, same upstream)`)
    }
    const rows = ([['keyvalet gateway', sse], ['naive proxy', sseNaive], ['naive undici proxy', sseNaiveUndici]] as const).filter(([, r]) => r !== undefined) as [string, SseReport][]
    p(table(['proxy', 'streams', 'first event', 'later event too', 'errors', 'open s', '1st event p50 ms', 'p99 ms', 'upstream held', 'proxy fds', 'CPU held'],
      rows.map(([name, r]) => {
        const o = r.open
        return [name, int(o.asked), int(o.firstEvents), int(r.withTick), int(o.errors + Object.values(o.non200).reduce((a, n) => a + n, 0)), f(o.seconds, 1),
          f(o.timeToFirstEvent.p50, 1), f(o.timeToFirstEvent.p99, 1), int(r.upstreamOpen - r.upstreamBefore), int(r.fdsOpen), `${int(r.cpuPctHold)} %`]
      })))
    p(table(['proxy RSS MiB', 'before', 'all open', `held ${SSE_HOLD_MS / 1000} s`, 'peak while open (VmHWM)', 'growth per stream KiB', 'peak while closing', 'after close'],
      rows.map(([name, r]) => [name, f(r.rssBeforeMiB, 1), f(r.rssOpenMiB, 1), f(r.rssHeldMiB, 1), f(peakOpen(r), 1),
        f(((r.rssHeldMiB - r.rssBeforeMiB) * 1024) / Math.max(1, r.open.firstEvents), 1), f(Math.max(r.rssClosing.peakMiB, r.rssClosing.hwmMiB ?? 0), 1), f(r.rssAfterCloseMiB, 1)])))
    if (sse !== undefined) {
      const mb = sse.memBefore
      const mh = sse.memHeld
      if (mb !== undefined && mh !== undefined) {
        p(`  keyvalet's main thread (process.memoryUsage, MiB), before → held: heapUsed ${f(mb.heapUsed, 1)} → ${f(mh.heapUsed, 1)}, heapTotal ${f(mb.heapTotal, 1)} → ${f(mh.heapTotal, 1)}, external ${f(mb.external, 1)} → ${f(mh.external, 1)} (arrayBuffers ${f(mb.arrayBuffers, 1)} → ${f(mh.arrayBuffers, 1)}); the rest of RSS is native (sockets, allocator)`)
      }
    }
    p(`  closing all, client side / until the upstream held no more streams than before: ${rows.map(([name, r]) => `${name} ${f(r.closeMs, 0)} / ${f(r.drainMs, 0)} ms${r.upstreamAfterClose > r.upstreamBefore ? ` (${r.upstreamAfterClose - r.upstreamBefore} still open after ${SSE_DRAIN_MS / 1000} s)` : ''}`).join(', ')}`)
    if (sse !== undefined) {
      if (sseAudit !== undefined) p(`  audit of this keyvalet: ${sseAudit.output.replace(/, last hash \S+/, '')} (expected ${int(sseAudit.expected)}: an open and a closing record per stream)`)
      if (sse.open.firstError !== undefined) p(`  first error: ${sse.open.firstError}`)
    }
    p()
  }

  const kvPaced = paced.get('keyvalet')?.result
  const dPaced = dPacedR
  const rpsVsNaive = ratio(kvR?.rps, naiveR?.rps)
  const dp50 = kvPaced && dPaced ? kvPaced.latency.p50 - dPaced.latency.p50 : undefined
  const dp99 = kvPaced && dPaced ? kvPaced.latency.p99 - dPaced.latency.p99 : undefined
  const cpuVsNaive = ratio(cpuMicros(closed.get('keyvalet')), cpuMicros(closed.get('naive')))
  const thinkD = think.get('direct')?.result.latency
  const thinkKv = think.get('keyvalet')?.result.latency
  const thinkDp50 = thinkKv && thinkD ? thinkKv.p50 - thinkD.p50 : undefined
  const thinkDp99 = thinkKv && thinkD ? thinkKv.p99 - thinkD.p99 : undefined
  // "No worse than the naive proxies'": the better of the two.
  const naiveThinkP99s = (['naive', 'naive-undici'] as const).map((n) => think.get(n)?.result.latency.p99).filter((x) => x !== undefined)
  const thinkNaiveDp99 = naiveThinkP99s.length === 0 || thinkD === undefined ? undefined : Math.min(...naiveThinkP99s) - thinkD.p99
  const kvRated = rated.get('keyvalet')?.result
  const dRated = rated.get('direct')?.result
  const worstDecide = worst === undefined || miss === undefined ? undefined : Math.max(worst.usPerOp, miss.usPerOp)
  const goals = [
    { goal: `keyvalet CPU per request at ${CONNECTIONS} connections ≤ ${GOALS.cpuVsNaive.toFixed(1)}× naive's`, want: `≤ ${GOALS.cpuVsNaive.toFixed(1)}×`, got: `${f(cpuVsNaive)}× (${f(cpuMicros(closed.get('keyvalet')), 0)} vs ${f(cpuMicros(closed.get('naive')), 0)} µs)`, ok: cpuVsNaive === undefined ? undefined : cpuVsNaive <= GOALS.cpuVsNaive },
    { goal: `keyvalet req/s at ${CONNECTIONS} connections ≥ ${GOALS.rpsVsNaive.toFixed(1)}× naive`, want: `≥ ${GOALS.rpsVsNaive.toFixed(1)}×`, got: `${f(rpsVsNaive)}×`, ok: rpsVsNaive === undefined ? undefined : rpsVsNaive >= GOALS.rpsVsNaive },
    { goal: `p50 at ~${RATE} req/s over direct (paced)`, want: `≤ +${GOALS.p50DeltaMs} ms`, got: `${signed(dp50, 3)} ms`, ok: dp50 === undefined ? undefined : dp50 <= GOALS.p50DeltaMs },
    { goal: `p99 at ~${RATE} req/s over direct (paced)`, want: `≤ +${GOALS.p99DeltaMs} ms`, got: `${signed(dp99, 3)} ms`, ok: dp99 === undefined ? undefined : dp99 <= GOALS.p99DeltaMs },
    { goal: `  same, autocannon overallRate: p50 / p99`, want: 'reference', got: `${signed(kvRated && dRated && kvRated.latency.p50 - dRated.latency.p50, 3)} / ${signed(kvRated && dRated && kvRated.latency.p99 - dRated.latency.p99, 3)} ms`, ok: undefined },
    ...(PHASES.has('think') ? [
      { goal: `idle pattern: p50 over direct`, want: `≤ +${GOALS.p50DeltaMs} ms`, got: `${signed(thinkDp50, 3)} ms`, ok: thinkDp50 === undefined ? undefined : thinkDp50 <= GOALS.p50DeltaMs },
      { goal: `idle pattern: p99 over direct, no worse than the naive proxies'`, want: `≤ ${signed(thinkNaiveDp99, 3)} ms`, got: `${signed(thinkDp99, 3)} ms`, ok: thinkDp99 === undefined || thinkNaiveDp99 === undefined ? undefined : thinkDp99 <= thinkNaiveDp99 },
    ] : []),
    { goal: 'keyvalet RSS idle (after start and the sanity checks)', want: `≤ ${GOALS.idleRssMiB} MiB`, got: `${f(idleRssMiB, 1)} MiB`, ok: idleRssMiB === undefined ? undefined : idleRssMiB <= GOALS.idleRssMiB },
    ...(PHASES.has('peak') ? [{ goal: `keyvalet RSS peak at ${PEAK_CONNECTIONS} connections`, want: `≤ ${GOALS.peakRssMiB} MiB`, got: `${f(kvPeak, 1)} MiB`, ok: kvPeak === undefined ? undefined : kvPeak <= GOALS.peakRssMiB }] : []),
    { goal: `keyvalet RSS growth during the ${f(UPLOAD_BYTES / 1024 ** 3, 2)} GiB upload`, want: `≤ ${GOALS.uploadGrowthMiB} MiB`, got: `${signed(uploadGrowth, 1)} MiB`, ok: uploadGrowth === undefined ? undefined : uploadGrowth <= GOALS.uploadGrowthMiB },
    ...(RUN_UPLOAD ? [{ goal: `keyvalet RSS growth during the ${f(UPLOAD_BYTES / 1024 ** 3, 2)} GiB download`, want: `≤ ${GOALS.uploadGrowthMiB} MiB`, got: `${signed(downloadGrowth, 1)} MiB`, ok: downloadGrowth === undefined ? undefined : downloadGrowth <= GOALS.uploadGrowthMiB }] : []),
    { goal: 'decide() at 1,000 rules (worst of last-rule match and miss)', want: `≤ ${GOALS.decideUs} µs`, got: `${f(worstDecide, 2)} µs`, ok: worstDecide === undefined ? undefined : worstDecide <= GOALS.decideUs },
    ...(PHASES.has('forward') ? [
      { goal: `forward plain http: p50 at ~${RATE} req/s over direct (paced; the gateway's goal)`, want: `≤ +${GOALS.p50DeltaMs} ms`, got: `${signed(fwdDp50, 3)} ms`, ok: fwdDp50 === undefined ? undefined : fwdDp50 <= GOALS.p50DeltaMs },
      { goal: `forward plain http: p99 at ~${RATE} req/s over direct (paced; the gateway's goal)`, want: `≤ +${GOALS.p99DeltaMs} ms`, got: `${signed(fwdDp99, 3)} ms`, ok: fwdDp99 === undefined ? undefined : fwdDp99 <= GOALS.p99DeltaMs },
      { goal: `intercepted https req/s at ${CONNECTIONS} tunnels ≥ ${GOALS.vsMitmproxy}× mitmproxy (measured here)`, want: `≥ ${GOALS.vsMitmproxy}×`, got: hM === undefined ? 'not measured' : `${f(vsMitm)}× (${int(hK?.result.rps)} vs ${int(hM.result.rps)})`, ok: vsMitm === undefined ? undefined : vsMitm >= GOALS.vsMitmproxy },
      { goal: `intercepted https req/s ≥ ${GOALS.vsMitmproxy}× the issue's mitmproxy figure (${MITMPROXY_ISSUE_RPS.toLocaleString('en-US')} req/s)`, want: `≥ ${int(GOALS.vsMitmproxy * MITMPROXY_ISSUE_RPS)} req/s`, got: `${f(vsIssue)}× (${int(hK?.result.rps)})`, ok: vsIssue === undefined ? undefined : vsIssue >= GOALS.vsMitmproxy },
    ] : []),
    ...(PHASES.has('store') ? [
      { goal: 'a request on PostgreSQL with reads kept vs SQLite (req/s)', want: '≥ 0.95×', got: `${f(ratio(store?.costs[1]?.rps, store?.costs[0]?.rps))}×`, ok: store?.costs[1] === undefined || store.costs[0] === undefined ? undefined : store.costs[1].rps >= 0.95 * store.costs[0].rps },
      { goal: 'revocation propagation across 3 instances: median', want: '< 100 ms', got: `${f(store?.propagation.medianMs, 2)} ms`, ok: store === undefined ? undefined : store.propagation.medianMs < 100 },
      { goal: 'revocation propagation across 3 instances: max', want: '< 1000 ms', got: `${f(store?.propagation.maxMs, 2)} ms`, ok: store === undefined ? undefined : store.propagation.maxMs < 1000 },
    ] : []),
    ...(PHASES.has('push') ? [
      { goal: `pushed policy in force on ${push?.instances ?? 2} instances: max of ${push?.pushes ?? 20}`, want: '< 1000 ms', got: `${f(push?.maxMs, 2)} ms`, ok: push === undefined ? undefined : push.maxMs < 1000 },
    ] : []),
    ...(PHASES.has('mint') ? [
      { goal: 'leaf minting: ms added to the first tunnel to a new host (median)', want: `≤ ${GOALS.mintMs} ms`, got: `${signed(mint?.addedHandshakeMs.median, 3)} ms`, ok: mint === undefined ? undefined : mint.addedHandshakeMs.median <= GOALS.mintMs },
    ] : []),
    ...(PHASES.has('sse') ? [
      { goal: `open event streams: every stream got its first event`, want: `${int(SSE_STREAMS)}/${int(SSE_STREAMS)}`, got: `${int(sse?.open.firstEvents)}/${int(sse?.open.asked)}`, ok: sse === undefined ? undefined : sse.open.firstEvents === SSE_STREAMS },
      { goal: `keyvalet RSS with ${int(SSE_STREAMS)} streams open (peak)${SSE_STREAMS < SSE_WANTED ? ` — ${int(SSE_WANTED)} asked, fd limit` : ''}`, want: `≤ ${GOALS.sseRssMiB} MiB`, got: `${f(ssePeak, 1)} MiB`, ok: ssePeak === undefined ? undefined : ssePeak <= GOALS.sseRssMiB },
    ] : []),
  ]
  p('Targets')
  p(table(['target', 'goal', 'measured', ''], goals.map((g) => [g.goal, g.want, g.got, g.ok === undefined ? (g.want === 'reference' ? '' : 'n/a') : mark(g.ok)])))
  p()
  if (profile !== undefined) {
    p(`keyvalet CPU profile (BENCH_PROFILE=1; the profiler itself slows keyvalet, so the numbers above are not comparable). Full profile: ${profileCopy}`)
    p(formatProfile(profile))
    p()
  }
  if (auditCheck !== undefined) {
    p(`audit: \`keyvalet audit verify\` → ${auditCheck.output} (${f(auditCheck.verifyS, 1)} s); the load generators counted ${int(auditCheck.counted)} answers (+ up to ${auditCheck.slack} in flight when autocannon stopped)`)
    p()
  }
  if (broken.length > 0) {
    p(`BROKEN (${broken.length}):`)
    for (const b of broken) p(`  - ${b}`)
  } else {
    p(`nothing broke: 0 errors, 0 non-2xx${RUN_UPLOAD ? ', every upload byte-exact' : ''}${auditCheck === undefined ? '' : ', audit chain intact and complete'}, no child crashed`)
  }
  process.stdout.write(`${out.join('\n')}\n`)

  const summary = {
    startedAt: startedAt.toISOString(),
    machine,
    settings: { phases: [...PHASES], durationS: DURATION_S, warmupS: WARMUP_S, connections: CONNECTIONS, rate: RATE, rateConnections: RATE_CONNECTIONS, uploadBytes: RUN_UPLOAD ? UPLOAD_BYTES : 0, profile: PROFILE },
    closedLoop: Object.fromEntries([...closed].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct }])),
    ratios: { keyvaletVsDirect: ratio(kvR?.rps, direct?.rps) ?? null, keyvaletVsNaive: rpsVsNaive ?? null, naiveVsDirect: ratio(naiveR?.rps, direct?.rps) ?? null },
    fixedRatePaced: Object.fromEntries([...paced].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct }])),
    idlePattern: Object.fromEntries([...think].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct }])),
    fixedRateAutocannon: Object.fromEntries([...rated].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct }])),
    keyvaletRss: { idleMiB: idleRssMiB ?? null, underLoad: kvLoad ?? null, peakAt256: peak.get('keyvalet')?.rss ?? null, nodeFlags: NODE_FLAGS },
    peakPhase: Object.fromEntries([...peak].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct, rss: v.rss ?? null }])),
    naiveRss: { idleMiB: naiveIdleRssMiB, underLoad: naiveLoad ?? null },
    uploads: Object.fromEntries([...uploads].map(([k, v]) => [k, v])),
    downloads: Object.fromEntries([...downloads].map(([k, v]) => [k, v])),
    downloadRssGrowthMiB: downloadGrowth ?? null,
    uploadRssGrowthMiB: uploadGrowth ?? null,
    policy: policy ?? null,
    budget: budget ?? null,
    store: store ?? null,
    mcp: mcp ?? null,
    grpc: grpcResult === undefined ? null : { ...grpcResult, rounds: grpcRounds },
    forward: {
      plainHttp: Object.fromEntries([...forwardPlain].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct, rss: v.rss ?? null }])),
      https: Object.fromEntries([...https].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct, rss: v.rss ?? null }])),
      mitmproxy: { version: mitm?.version ?? null, note: mitmNote ?? null, issueRps: MITMPROXY_ISSUE_RPS },
      ratios: { httpsVsDirect: ratio(hK?.result.rps, hD?.result.rps) ?? null, httpsVsMitmproxy: vsMitm ?? null, h2VsMitmproxyH2: ratio(hK2?.result.rps, hM2?.result.rps) ?? null, httpsVsIssueFigure: vsIssue ?? null, plainForwardVsGateway: ratio(fClosed?.result.rps, kvR?.rps) ?? null },
    },
    mint: mint ?? null,
    sse: sse === undefined ? null : { ...sse, streams: SSE_STREAMS, nofile: { soft: NOFILE.soft, hard: NOFILE.hard }, peakMiB: ssePeak ?? null, audit: sseAudit ?? null, naive: sseNaive === undefined ? null : { ...sseNaive, peakMiB: peakOpen(sseNaive) ?? null }, naiveUndici: sseNaiveUndici === undefined ? null : { ...sseNaiveUndici, peakMiB: peakOpen(sseNaiveUndici) ?? null } },
    targets: goals.filter((g) => g.want !== 'reference').map((g) => ({ goal: g.goal, want: g.want, measured: g.got, status: g.ok === undefined ? 'n/a' : mark(g.ok) })),
    profile: profile ?? null,
    audit: auditCheck ?? null,
    broken,
  }
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(summary, null, 2)}\n`)
  log(`wrote ${join(RESULTS, 'latest.json')}`)
  return broken.length > 0 ? 1 : 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  if (interrupted) await new Promise(() => {}) // the SIGINT handler cleans up and exits 130
  process.stderr.write(`[bench] FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  for (const b of broken) process.stderr.write(`[bench]   also: ${b}\n`)
  code = 1
} finally {
  await cleanup()
}
process.exit(code)
