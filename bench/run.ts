/**
 * `npm run bench`: keyvalet's gateway side by side with the upstream direct and a naive node:http
 * reverse proxy. Upstream, proxy under test and load generator each run in their own process.
 *
 * Environment:
 *   BENCH_DURATION_S   seconds per measurement (default 8)
 *   BENCH_WARMUP_S     warm-up seconds before each closed-loop measurement (default 2)
 *   BENCH_SKIP_UPLOAD  1: skip the 1 GiB uploads
 *   BENCH_UPLOAD_MIB   upload size in MiB (default 1024)
 *   BENCH_PROFILE      1: run keyvalet with --cpu-prof and print a summary of where its time goes
 *   BENCH_POLICY_ITERATIONS  decide() iterations per case (default 200000)
 *   BENCH_PHASES       comma list of policy,closed,fixed,upload (default all; e.g. closed with BENCH_PROFILE=1)
 *
 * It reports; it never fails on a missed target. It exits non-zero only when something broke:
 * errors or non-2xx answers, a child crashing, keyvalet not starting.
 */

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { cpus, platform, arch, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { Children, type Managed } from './children.ts'
import { SECRET_VALUE, startKeyvalet, type KeyvaletInstance } from './keyvalet.ts'
import type { LoadJob, LoadResult } from './load.ts'
import type { PolicyResult } from './policy.ts'
import { formatProfile, summariseProfile, type ProfileSummary } from './profile.ts'
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
const ALL_PHASES = ['policy', 'closed', 'fixed', 'upload'] as const
const PHASES: ReadonlySet<string> = new Set((process.env.BENCH_PHASES ?? ALL_PHASES.join(',')).split(',').map((x) => x.trim()).filter((x) => x !== ''))
for (const ph of PHASES) if (!(ALL_PHASES as readonly string[]).includes(ph)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(ph)} (known: ${ALL_PHASES.join(', ')})`)
const RUN_UPLOAD = PHASES.has('upload') && !SKIP_UPLOAD
const CONNECTIONS = 64
const RATE = 1000
const RATE_CONNECTIONS = 10
const PATH = '/items/1'

const GOALS = { rpsVsNaive: 1.7, p50DeltaMs: 0.5, p99DeltaMs: 2, uploadGrowthMiB: 64, decideUs: 10 } as const

type TargetName = 'direct' | 'naive' | 'keyvalet'
interface Target { readonly name: TargetName; readonly url: string; readonly headers: Record<string, string>; readonly proc: Managed | undefined }

interface LoadRun { readonly result: LoadResult; readonly cpuPct: Record<string, number>; readonly rss: RssSummary | undefined }
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

async function forkReady(name: string, file: string, args: string[] = []): Promise<{ proc: Managed; port: number }> {
  const proc = children.fork(name, join(BENCH, file), args)
  const { port } = await proc.waitForMessage<{ port: number }>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  return { proc, port }
}

/** One load job in a fresh load-generator process; CPU of the listed processes over the measured window. */
async function runLoad(job: LoadJob, watch: Record<string, Managed | undefined>, rssOf: Managed | undefined): Promise<LoadRun> {
  const worker = children.fork(`load ${job.mode} ${job.url}`, join(BENCH, 'load.ts'))
  worker.expectExit()
  const all: Record<string, Managed> = { loadgen: worker }
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

async function runUpload(target: Target, rssOf: Managed | undefined): Promise<UploadRun> {
  const worker = children.fork(`upload ${target.name}`, join(BENCH, 'upload.ts'))
  worker.expectExit()
  const rssBefore = rssOf === undefined ? undefined : readRss(rssOf.pid)
  const sampler = rssOf === undefined ? undefined : new RssSampler(rssOf.pid, 100)
  try {
    const done = worker.waitForMessage<{ event: string; result?: UploadResult; error?: string }>((m) => ['result', 'error'].includes(String((m as { event?: string }).event)), 180_000)
    const job: UploadJob = { url: `${target.url}/upload`, headers: target.headers, bytes: UPLOAD_BYTES, chunkBytes: 256 * 1024 }
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

  // 2. Processes: upstream, naive proxy, keyvalet.
  const upstream = await forkReady('upstream', 'upstream.ts')
  const naive = await forkReady('naive proxy', 'naive-proxy.ts', [String(upstream.port)])
  const profileDir = join(tmp, 'cpu-profile')
  let keyvalet: KeyvaletInstance | undefined
  try {
    keyvalet = await startKeyvalet({
      children, repo: REPO, dir: tmp, upstreamPort: upstream.port,
      nodeFlags: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    })
  } catch (err) {
    broken.push(`keyvalet did not start: ${err instanceof Error ? err.message : String(err)}`)
  }
  const targets: Target[] = [
    { name: 'direct', url: `http://127.0.0.1:${upstream.port}`, headers: {}, proc: undefined },
    { name: 'naive', url: `http://127.0.0.1:${naive.port}/echo`, headers: {}, proc: naive.proc },
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
  const closed = new Map<TargetName, LoadRun>()
  for (const t of PHASES.has('closed') ? targets : []) {
    log(`closed loop: ${t.name}, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s`)
    const run = await runLoad({ mode: 'closed', url: `${t.url}${PATH}`, headers: t.headers, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S },
      { upstream: upstream.proc, proxy: t.proc }, t.proc)
    checkLoad(t.name, 'closed loop', run.result)
    closed.set(t.name, run)
  }

  // 4. Fixed low load, ~1,000 requests/s: paced open loop, then autocannon overallRate.
  const paced = new Map<TargetName, LoadRun>()
  const rated = new Map<TargetName, LoadRun>()
  for (const t of PHASES.has('fixed') ? targets : []) {
    log(`fixed rate (paced open loop): ${t.name}, ${RATE} req/s, ${DURATION_S} s`)
    const run = await runLoad({ mode: 'paced', url: `${t.url}${PATH}`, headers: t.headers, connections: RATE_CONNECTIONS, rate: RATE, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: t.proc }, undefined)
    checkLoad(t.name, 'paced 1,000 req/s', run.result)
    paced.set(t.name, run)
  }
  for (const t of PHASES.has('fixed') ? targets : []) {
    log(`fixed rate (autocannon overallRate): ${t.name}, ${RATE} req/s, ${DURATION_S} s`)
    const run = await runLoad({ mode: 'rate', url: `${t.url}${PATH}`, headers: t.headers, connections: RATE_CONNECTIONS, rate: RATE, durationS: DURATION_S, warmupS: 1 },
      { upstream: upstream.proc, proxy: t.proc }, undefined)
    checkLoad(t.name, 'autocannon overallRate 1,000', run.result)
    rated.set(t.name, run)
  }

  // 5. Uploads.
  const uploads = new Map<TargetName, UploadRun>()
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
  }

  // 6. Stop keyvalet cleanly (that is when --cpu-prof writes the profile).
  let profile: ProfileSummary | undefined
  let profileCopy: string | undefined
  if (keyvalet !== undefined) {
    const exit = await keyvalet.process.stop(10_000)
    if (exit.killed || exit.code !== 0) broken.push(`keyvalet did not stop cleanly on SIGTERM (code ${exit.code}, signal ${exit.signal}${exit.killed ? ', needed SIGKILL' : ''})`)
    const { errorLogLines, firstErrorLog } = keyvalet.process
    if (errorLogLines > 0) broken.push(`keyvalet logged ${errorLogLines} error line(s), the first: ${firstErrorLog ?? ''}`)
    if (PROFILE) {
      try {
        const file = readdirSync(profileDir).find((n) => n.endsWith('.cpuprofile'))
        if (file === undefined) throw new Error('no .cpuprofile written')
        profileCopy = join(RESULTS, 'keyvalet.cpuprofile')
        copyFileSync(join(profileDir, file), profileCopy)
        profile = summariseProfile(profileCopy, REPO, 25)
      } catch (err) {
        broken.push(`profile: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }
  // 7. Every request keyvalet answered must be in an intact audit chain.
  let auditCheck: { records: number; counted: number; slack: number; verifyS: number; output: string } | undefined
  if (keyvalet !== undefined) {
    const kvRuns = [closed, paced, rated].map((m) => m.get('keyvalet')).filter((r) => r !== undefined)
    const counted = 2 + kvRuns.reduce((a, r) => a + r.result.requests + r.result.warmupRequests, 0) + (uploads.has('keyvalet') ? 1 : 0)
    // autocannon stops with requests in flight: served and audited, but not counted (≤ connections, twice with warm-up).
    const slack = kvRuns.filter((r) => r.result.mode !== 'paced').length * 2 * CONNECTIONS
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
  const kvR = closed.get('keyvalet')?.result
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b === 0 ? undefined : a / b)

  p(`keyvalet benchmark — ${startedAt.toISOString()}`)
  p(`machine: ${machine.platform}, ${machine.cpus} CPUs (${machine.cpuModel}), ${f(machine.memGiB, 1)} GiB RAM, Node ${machine.node}, data dir on ${machine.tmpFs}`)
  p(`setup: upstream, proxy under test and load generator in separate processes, all on 127.0.0.1 (${machine.cpus} cores shared by 3 busy processes)`)
  p(`       keyvalet with every check on: SQLite task-key lookup, policy, vault open (AES-GCM), injection, response redaction, hash-chained audit (its own thread, SQLite WAL, group commit, audit.fsync off: the default)`)
  p()
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
  p(`  ratios (req/s): keyvalet/direct ${f(ratio(kvR?.rps, direct?.rps))}×   keyvalet/naive ${f(ratio(kvR?.rps, naiveR?.rps))}×   naive/direct ${f(ratio(naiveR?.rps, direct?.rps))}×`)
  p(`  latency vs direct: naive p50 ${signed(naiveR && direct && naiveR.latency.p50 - direct.latency.p50)} ms, p99 ${signed(naiveR && direct && naiveR.latency.p99 - direct.latency.p99)} ms;` +
    ` keyvalet p50 ${signed(kvR && direct && kvR.latency.p50 - direct.latency.p50)} ms, p99 ${signed(kvR && direct && kvR.latency.p99 - direct.latency.p99)} ms`)
  p(`  (latencies at full resolution; autocannon's own whole-ms histogram gave p50/p99: ${targets.map((t) => `${t.name} ${closed.get(t.name)?.result.autocannonLatency?.p50 ?? '—'}/${closed.get(t.name)?.result.autocannonLatency?.p99 ?? '—'}`).join(', ')})`)
  p()
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
  p(`2a. Fixed load ${RATE.toLocaleString('en-US')} req/s, paced open loop (evenly spaced sends, undici pool of ${RATE_CONNECTIONS} connections), ${DURATION_S} s — the steady-rate measurement`)
  p(fixedTable(paced))
  p(`  generator self-check: send lag p99 ${f(lag?.p99, 3)} ms, max ${f(lag?.max, 1)} ms (timer granularity; latency is timed from each actual send)`)
  p()
  p(`2b. Fixed load ${RATE.toLocaleString('en-US')} req/s, autocannon overallRate, ${RATE_CONNECTIONS} connections, ${DURATION_S} s — for reference`)
  p(fixedTable(rated))
  p(`  NB autocannon paces per connection per second: each second every connection sends its ${RATE / RATE_CONNECTIONS} requests back to back,`)
  p(`  then idles, so these are ${RATE_CONNECTIONS}-way concurrent bursts rather than a steady rate.`)
  p()
  const kvLoad = closed.get('keyvalet')?.rss
  const naiveLoad = closed.get('naive')?.rss
  p(`3. Resident memory (VmRSS), sampled every 100 ms; VmHWM = the kernel's peak over the same window`)
  p(table(['process', 'idle before load MiB', `peak under ${CONNECTIONS}-connection load MiB`, 'VmHWM MiB', 'samples'], [
    ['keyvalet', f(idleRssMiB, 1), f(kvLoad?.peakMiB, 1), f(kvLoad?.hwmMiB, 1), int(kvLoad?.samples)],
    ['naive proxy (baseline)', f(naiveIdleRssMiB, 1), f(naiveLoad?.peakMiB, 1), f(naiveLoad?.hwmMiB, 1), int(naiveLoad?.samples)],
  ]))
  p()
  const kvUp = uploads.get('keyvalet')
  const dUp = uploads.get('direct')
  const uploadGrowth = kvUp?.rss === undefined || kvUp.rssBeforeMiB === undefined ? undefined : Math.max(kvUp.rss.peakMiB, kvUp.rss.hwmMiB ?? 0) - kvUp.rssBeforeMiB
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
  }
  p()
  const worst = policy?.decide[0]
  const miss = policy?.decide[1]
  p(`5. Policy, in-process: one connector with ${policy?.rules ?? 1000} rules (parsed by parseConfig in ${f(policy?.parseMs, 0)} ms)`)
  if (policy !== undefined) {
    p(table(['case', 'result', 'iterations', 'µs/call (median of 5 rounds)', 'min µs'],
      [...policy.decide, ...policy.normalisePath].map((c) => [c.name, c.got.length > 40 ? `${c.got.slice(0, 37)}...` : c.got, int(c.iterations), f(c.usPerOp, 3), f(c.minUsPerOp, 3)]), 2))
  }
  p()

  const kvPaced = paced.get('keyvalet')?.result
  const dPaced = paced.get('direct')?.result
  const rpsVsNaive = ratio(kvR?.rps, naiveR?.rps)
  const dp50 = kvPaced && dPaced ? kvPaced.latency.p50 - dPaced.latency.p50 : undefined
  const dp99 = kvPaced && dPaced ? kvPaced.latency.p99 - dPaced.latency.p99 : undefined
  const kvRated = rated.get('keyvalet')?.result
  const dRated = rated.get('direct')?.result
  const worstDecide = worst === undefined || miss === undefined ? undefined : Math.max(worst.usPerOp, miss.usPerOp)
  const goals = [
    { goal: `keyvalet req/s at ${CONNECTIONS} connections ≥ ${GOALS.rpsVsNaive}× naive`, want: `≥ ${GOALS.rpsVsNaive}×`, got: `${f(rpsVsNaive)}×`, ok: rpsVsNaive === undefined ? undefined : rpsVsNaive >= GOALS.rpsVsNaive },
    { goal: `p50 at ~${RATE} req/s over direct (paced)`, want: `≤ +${GOALS.p50DeltaMs} ms`, got: `${signed(dp50, 3)} ms`, ok: dp50 === undefined ? undefined : dp50 <= GOALS.p50DeltaMs },
    { goal: `p99 at ~${RATE} req/s over direct (paced)`, want: `≤ +${GOALS.p99DeltaMs} ms`, got: `${signed(dp99, 3)} ms`, ok: dp99 === undefined ? undefined : dp99 <= GOALS.p99DeltaMs },
    { goal: `  same, autocannon overallRate: p50 / p99`, want: 'reference', got: `${signed(kvRated && dRated && kvRated.latency.p50 - dRated.latency.p50, 3)} / ${signed(kvRated && dRated && kvRated.latency.p99 - dRated.latency.p99, 3)} ms`, ok: undefined },
    { goal: `keyvalet RSS growth during the ${f(UPLOAD_BYTES / 1024 ** 3, 2)} GiB upload`, want: `≤ ${GOALS.uploadGrowthMiB} MiB`, got: `${signed(uploadGrowth, 1)} MiB`, ok: uploadGrowth === undefined ? undefined : uploadGrowth <= GOALS.uploadGrowthMiB },
    { goal: 'decide() at 1,000 rules (worst of last-rule match and miss)', want: `≤ ${GOALS.decideUs} µs`, got: `${f(worstDecide, 2)} µs`, ok: worstDecide === undefined ? undefined : worstDecide <= GOALS.decideUs },
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
    fixedRateAutocannon: Object.fromEntries([...rated].map(([k, v]) => [k, { ...v.result, cpuPct: v.cpuPct }])),
    keyvaletRss: { idleMiB: idleRssMiB ?? null, underLoad: kvLoad ?? null },
    naiveRss: { idleMiB: naiveIdleRssMiB, underLoad: naiveLoad ?? null },
    uploads: Object.fromEntries([...uploads].map(([k, v]) => [k, v])),
    uploadRssGrowthMiB: uploadGrowth ?? null,
    policy: policy ?? null,
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
