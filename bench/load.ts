/**
 * The load generator, in its own process: fork it, send one LoadJob over IPC, receive
 * `{ event: 'measuring' }` when the measured part starts, then one LoadResult, then it exits.
 *
 * Modes:
 *  - closed: autocannon, N connections, each sends its next request as soon as the previous answer
 *    arrived (throughput).
 *  - rate: autocannon with `overallRate`. NB autocannon paces per connection per *second*: each
 *    connection fires its quota back to back at the start of every second, then idles, so this is
 *    a burst of N-way concurrency, not a steady rate. Kept because it is the common tool.
 *  - paced: an open-loop generator (undici Pool): requests leave at evenly spaced intended times,
 *    whether or not earlier ones have answered; latency is timed from the dispatch call, so time
 *    queued in the pool counts. This is the steady "~1,000 requests/s" measurement.
 *  - think: the pattern an agent's SDK makes: N keep-alive connections, each sending a request,
 *    reading the answer, then idling `thinkMs` before the next (so the target idles between
 *    requests too, and every request wakes it).
 *  - undici: closed loop with undici (N concurrent request loops over a pool of N keep-alive
 *    connections), for what autocannon cannot do: https with a given CA, and https through a
 *    forward proxy (ProxyAgent: CONNECT tunnels, kept alive and reused, TLS inside them); with
 *    `h2Tunnels`, HTTP/2 inside that many tunnels, the N request loops multiplexed as streams.
 *
 * `proxy` (closed, rate, paced): `url` is then an absolute http:// URL sent in absolute form
 * (`GET http://host:port/path HTTP/1.1`, Host the target's) to the forward proxy at `proxy`: what
 * any HTTP client configured with HTTP_PROXY sends for a plain http:// URL.
 *
 * In every mode the latency of each 2xx response is kept at full (sub-millisecond) resolution;
 * autocannon's own histogram records whole milliseconds only.
 */

import autocannon, { type Result } from 'autocannon'
import { subscribe } from 'node:diagnostics_channel'
import { Agent, Pool, ProxyAgent, type Dispatcher } from 'undici'
import { Samples, type LatencySummary } from './stats.ts'

export interface LoadJob {
  readonly mode: 'closed' | 'rate' | 'paced' | 'undici' | 'think'
  readonly url: string
  /** closed/rate/paced: origin of a forward proxy; `url` is then sent to it in absolute form. */
  readonly proxy?: string
  /** undici: trust anchors (PEM) for an https `url` (direct, or inside the tunnel with `tunnel`). */
  readonly ca?: string
  /** undici: go through this forward proxy with CONNECT (undici ProxyAgent). */
  readonly tunnel?: { readonly proxy: string; readonly token?: string }
  /** undici with `tunnel`: speak HTTP/2 inside this many tunnels (ALPN h2 first), the `connections` request loops multiplexed on them. */
  readonly h2Tunnels?: number
  readonly headers: Record<string, string>
  readonly connections: number
  readonly durationS: number
  /** Requests/s for rate and paced. */
  readonly rate?: number
  /** think: ms each connection idles after an answer before its next request. */
  readonly thinkMs?: number
  /** Same shape of load, unmeasured, first (JIT of this worker and of the target). */
  readonly warmupS: number
}

export interface LoadResult {
  readonly mode: LoadJob['mode']
  readonly durationS: number
  /** Completed responses (any status). */
  readonly requests: number
  /** Completed responses during the warm-up (not in any other figure). */
  readonly warmupRequests: number
  readonly rps: number
  readonly ok2xx: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly statusCodes: Record<string, number>
  /** ms, full resolution, 2xx responses only. */
  readonly latency: LatencySummary
  /** autocannon's whole-millisecond histogram, for reference (closed/rate only). */
  readonly autocannonLatency?: { readonly p50: number; readonly p99: number }
  /** paced only: how late the scheduler sent requests (ms), a sanity check of the generator itself. */
  readonly schedulerLagMs?: { readonly p99: number; readonly max: number }
  /** undici only: connections the client opened (direct), or CONNECT tunnels (through a proxy), warm-up included. */
  readonly connectionsOpened?: number
  /** undici only: the first error message, if any. */
  readonly firstError?: string
}

/** autocannon's request line and Host for `job`: origin-form to the target, or absolute-form to a proxy. */
function autocannonTarget(job: LoadJob): { url: string; requests?: { path: string; headers: Record<string, string> }[] } {
  if (job.proxy === undefined) return { url: job.url }
  const target = new URL(job.url)
  return { url: job.proxy, requests: [{ path: target.href, headers: { ...job.headers, host: target.host } }] }
}

function runAutocannon(job: LoadJob, durationS: number, samples: Samples | undefined): Promise<Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      ...autocannonTarget(job),
      method: 'GET',
      headers: job.headers,
      connections: job.connections,
      pipelining: 1,
      duration: durationS,
      timeout: 10,
      ...(job.mode === 'rate' && job.rate !== undefined ? { overallRate: job.rate } : {}),
    }, (err, result) => (err === null ? resolve(result) : reject(err)))
    if (samples !== undefined) {
      instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
        if (statusCode >= 200 && statusCode < 300) samples.push(responseTime)
      })
    }
  })
}

function completed(r: Result): number {
  return Object.values(r.statusCodeStats).reduce((a, { count }) => a + count, 0)
}

async function autocannonJob(job: LoadJob): Promise<LoadResult> {
  const warmupRequests = job.warmupS > 0 ? completed(await runAutocannon(job, job.warmupS, undefined)) : 0
  const samples = new Samples()
  process.send?.({ event: 'measuring' })
  const r = await runAutocannon(job, job.durationS, samples)
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(r.statusCodeStats)) statusCodes[code] = count
  const requests = completed(r)
  return {
    mode: job.mode,
    durationS: r.duration,
    requests,
    warmupRequests,
    rps: requests / r.duration,
    ok2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes,
    latency: samples.summary(),
    autocannonLatency: { p50: r.latency.p50, p99: r.latency.p99 },
  }
}

async function pacedRun(job: LoadJob, pool: Pool, durationS: number): Promise<LoadResult> {
  const url = new URL(job.url)
  const path = job.proxy === undefined ? url.pathname + url.search : url.href
  const headers = job.proxy === undefined ? job.headers : { ...job.headers, host: url.host }
  const rate = job.rate ?? 1000
  const intervalNs = 1e9 / rate
  const total = Math.round(rate * durationS)
  const samples = new Samples()
  const lag = new Samples()
  const statusCodes: Record<string, number> = {}
  let errors = 0
  let timeouts = 0
  let done = 0
  let sent = 0
  const t0 = process.hrtime.bigint()
  const deadlineNs = BigInt(Math.round((durationS + 15) * 1e9))

  await new Promise<void>((resolve) => {
    const finishIfDone = (): void => {
      if (done === total) resolve()
    }
    const fire = (intendedNs: number): void => {
      const start = process.hrtime.bigint()
      lag.push(Number(start - t0) / 1e6 - intendedNs / 1e6)
      pool.request({ path, method: 'GET', headers }).then(async ({ statusCode, body }) => {
        await body.dump()
        const ms = Number(process.hrtime.bigint() - start) / 1e6
        statusCodes[String(statusCode)] = (statusCodes[String(statusCode)] ?? 0) + 1
        if (statusCode >= 200 && statusCode < 300) samples.push(ms)
      }, (err: unknown) => {
        const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : ''
        if (code.includes('TIMEOUT')) timeouts++
        else errors++
      }).finally(() => {
        done++
        finishIfDone()
      })
    }
    const tick = (): void => {
      const elapsed = Number(process.hrtime.bigint() - t0)
      while (sent < total && sent * intervalNs <= elapsed) fire(sent++ * intervalNs)
      if (sent < total) {
        if (process.hrtime.bigint() - t0 > deadlineNs) return resolve()
        setTimeout(tick, 1)
      }
    }
    tick()
    // Bounded: give up on answers that never come.
    setTimeout(resolve, (durationS + 15) * 1000).unref()
  })
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
  const ok2xx = Object.entries(statusCodes).filter(([c]) => c.startsWith('2')).reduce((a, [, n]) => a + n, 0)
  const requests = Object.values(statusCodes).reduce((a, n) => a + n, 0)
  const lagSummary = lag.summary()
  const result: LoadResult = {
    mode: 'paced',
    durationS: elapsedS,
    requests,
    warmupRequests: 0,
    rps: requests / elapsedS,
    ok2xx,
    non2xx: requests - ok2xx,
    errors: errors + (total - done),
    timeouts,
    statusCodes,
    latency: samples.summary(),
    schedulerLagMs: { p99: lagSummary.p99, max: lagSummary.max },
  }
  return result
}

async function pacedJob(job: LoadJob): Promise<LoadResult> {
  const pool = new Pool(new URL(job.proxy ?? job.url).origin, { connections: job.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000 })
  try {
    const warmupRequests = job.warmupS > 0 ? (await pacedRun(job, pool, job.warmupS)).requests : 0
    process.send?.({ event: 'measuring' })
    return { ...(await pacedRun(job, pool, job.durationS)), warmupRequests }
  } finally {
    await pool.close()
  }
}

interface UndiciRun { requests: number; elapsedS: number; statusCodes: Record<string, number>; errors: number; timeouts: number; firstError: string | undefined }

/** `connections` loops, each sending its next request when the previous answer has been read (and, with `thinkMs`, after idling that long). */
async function undiciRun(job: LoadJob, dispatcher: Dispatcher, durationS: number, samples: Samples | undefined): Promise<UndiciRun> {
  const url = new URL(job.url)
  const path = url.pathname + url.search
  const statusCodes: Record<string, number> = {}
  let errors = 0
  let timeouts = 0
  let firstError: string | undefined
  let stop = false
  const t0 = process.hrtime.bigint()
  const timer = setTimeout(() => { stop = true }, durationS * 1000)
  const loop = async (): Promise<void> => {
    while (!stop) {
      const start = process.hrtime.bigint()
      try {
        const { statusCode, body } = await dispatcher.request({ origin: url.origin, path, method: 'GET', headers: job.headers })
        await body.dump()
        statusCodes[String(statusCode)] = (statusCodes[String(statusCode)] ?? 0) + 1
        if (samples !== undefined && statusCode >= 200 && statusCode < 300) samples.push(Number(process.hrtime.bigint() - start) / 1e6)
        if (job.thinkMs !== undefined) await new Promise((r) => setTimeout(r, job.thinkMs))
      } catch (err) {
        const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : ''
        if (code.includes('TIMEOUT')) timeouts++
        else errors++
        firstError ??= err instanceof Error ? `${code} ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err)
        await new Promise((r) => setTimeout(r, 10)) // no hot loop on a refusing target
      }
    }
  }
  await Promise.all(Array.from({ length: job.connections }, loop))
  clearTimeout(timer)
  const requests = Object.values(statusCodes).reduce((a, n) => a + n, 0)
  return { requests, elapsedS: Number(process.hrtime.bigint() - t0) / 1e9, statusCodes, errors, timeouts, firstError }
}

async function undiciJob(job: LoadJob): Promise<LoadResult> {
  let opened = 0
  const count = (): void => void opened++
  const channel = job.tunnel === undefined ? 'undici:client:connected' : 'undici:proxy:connected'
  subscribe(channel, count)
  const h2 = job.h2Tunnels !== undefined
  const common = { connections: job.h2Tunnels ?? job.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000, allowH2: h2 }
  // HTTP/1.1 unless asked: undici offers h2 only second, and keyvalet takes the client's preference.
  const requestTls = { ...(job.ca === undefined ? {} : { ca: job.ca }), allowH2: h2, preferH2: h2 }
  const dispatcher: Dispatcher = job.tunnel === undefined
    ? new Agent({ ...common, ...(job.ca === undefined ? {} : { connect: { ca: job.ca } }) })
    : new ProxyAgent({ ...common, uri: job.tunnel.proxy, ...(job.tunnel.token === undefined ? {} : { token: job.tunnel.token }), requestTls })
  try {
    const warm = job.warmupS > 0 ? await undiciRun(job, dispatcher, job.warmupS, undefined) : undefined
    const samples = new Samples()
    process.send?.({ event: 'measuring' })
    const r = await undiciRun(job, dispatcher, job.durationS, samples)
    const ok2xx = Object.entries(r.statusCodes).filter(([c]) => c.startsWith('2')).reduce((a, [, n]) => a + n, 0)
    const warmErrors = warm === undefined ? 0 : warm.errors + warm.timeouts
    return {
      mode: job.mode, durationS: r.elapsedS, requests: r.requests, warmupRequests: warm?.requests ?? 0, rps: r.requests / r.elapsedS,
      ok2xx, non2xx: r.requests - ok2xx, errors: r.errors + warmErrors, timeouts: r.timeouts, statusCodes: r.statusCodes, latency: samples.summary(),
      connectionsOpened: opened, ...((r.firstError ?? warm?.firstError) === undefined ? {} : { firstError: r.firstError ?? warm?.firstError }),
    }
  } finally {
    await dispatcher.close()
  }
}

export function runJob(job: LoadJob): Promise<LoadResult> {
  return job.mode === 'paced' ? pacedJob(job) : job.mode === 'undici' || job.mode === 'think' ? undiciJob(job) : autocannonJob(job)
}

if (import.meta.main) {
  process.once('message', (job: LoadJob) => {
    runJob(job).then((result) => {
      process.send?.({ event: 'result', result }, () => process.exit(0))
    }, (err: unknown) => {
      process.send?.({ event: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
}
