/**
 * What keyvalet's main thread allocates per request under load, and where: the garbage that fills
 * V8's young generation (scavenges) and, with many requests in flight, is promoted and fills the
 * old one (peak RSS at many connections). Starts keyvalet with the bench's config
 * (bench/keyvalet.ts) and bench/alloc-sampler.mjs preloaded, puts it under a closed loop on
 * GET /echo/items/1, samples its allocations for LOAD_MS after a 2 s warm-up, and prints the
 * bytes allocated per request and the largest allocation sites and packages.
 * Measurement tool, not part of `npm run bench`.
 *
 * With --rate R the load is paced (R requests/s spread evenly over the connections, bench/load.ts's
 * `paced` mode) instead of a closed loop: the regime of the paced phase, whose p99 the full
 * collections make.
 *
 * With --forward h1|h2 the load is intercepted HTTPS through the forward listener instead (the
 * bench's forward phase: undici through a CONNECT tunnel per connection, or with h2 the
 * connections as streams on two tunnels), to compare what an HTTP/2 stream leaves behind with
 * what an HTTP/1.1 request does.
 *
 * Usage: node bench/alloc-profile.ts [--connections 256] [--rate R | --forward h1|h2] [--runs N]
 *   env LOAD_MS (default 4000): how long the sampling runs; KEEP=1 keeps the .heapprofile;
 *   ALLOC_NODE_FLAGS: extra node (V8) flags for keyvalet, space-separated, e.g. to see what a heap flag changes.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Children } from './children.ts'
import { proxyBasic, startKeyvalet } from './keyvalet.ts'
import type { LoadJob, LoadResult } from './load.ts'
import type { UpstreamReady } from './upstream.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const { values } = parseArgs({ options: { connections: { type: 'string', default: '256' }, rate: { type: 'string' }, forward: { type: 'string' }, runs: { type: 'string', default: '1' } } })
const CONNECTIONS = Number(values.connections)
const RATE = values.rate === undefined ? undefined : Number(values.rate)
const LOAD_MS = Number(process.env.LOAD_MS ?? 4000)
const FORWARD = values.forward
if (FORWARD !== undefined && FORWARD !== 'h1' && FORWARD !== 'h2') throw new Error('--forward takes h1 or h2')
if (FORWARD !== undefined && RATE !== undefined) throw new Error('--forward runs a closed loop: leave --rate out')
/** Tunnels the HTTP/2 streams share, as bench/run.ts's forward phase. */
const H2_TUNNELS = 2

interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: ProfileNode[] }

/** Self bytes by allocation site (function, file:line) and by package or src folder. */
function summarise(head: ProfileNode): { total: number; sites: Map<string, number>; places: Map<string, number> } {
  const sites = new Map<string, number>()
  const places = new Map<string, number>()
  let total = 0
  const stack = [head]
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const { functionName, url, lineNumber } = node.callFrame
    const file = url.replace(/^.*\/(node_modules\/(?:@[^/]+\/)?[^/]+|src)\//, '$1/')
    total += node.selfSize
    const site = `${functionName === '' ? '(anonymous)' : functionName} ${file === '' ? '(native)' : `${file}:${lineNumber + 1}`}`
    sites.set(site, (sites.get(site) ?? 0) + node.selfSize)
    const place = url === '' ? '(native)' : url.startsWith('node:') ? 'node: builtins' : (/^(node_modules\/(?:@[^/]+\/)?[^/]+|src\/[^/]+)/.exec(file)?.[1] ?? file)
    places.set(place, (places.get(place) ?? 0) + node.selfSize)
    stack.push(...node.children)
  }
  return { total, sites, places }
}

const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'alloc-profile-'))
try {
  for (let run = 0; run < Number(values.runs); run++) {
    const dir = join(tmp, `run-${run}`)
    mkdirSync(dir)
    const profileFile = join(dir, 'main.heapprofile')
    const upstream = children.fork('upstream', join(BENCH, 'upstream.ts'))
    const ready = await upstream.waitForMessage<UpstreamReady>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
    const kv = await startKeyvalet({
      children, repo: REPO, dir, upstreamPort: ready.port, nodeFlags: [...(process.env.ALLOC_NODE_FLAGS ?? '').split(' ').filter((f) => f !== ''), '--import', join(BENCH, 'alloc-sampler.mjs')], extraEnv: { ALLOC_PROFILE_FILE: profileFile },
      ...(FORWARD === undefined ? {} : { forward: { httpsPort: ready.httpsPort, upstreamCaPem: ready.caPem, mintHosts: [], sseConnectors: 0 } }),
    })
    const load = children.fork('load', join(BENCH, 'load.ts'))
    load.expectExit()
    const measuring = load.waitForMessage((m) => (m as { event?: string }).event === 'measuring', 60_000)
    const durationS = Math.ceil(LOAD_MS / 1000) + 2
    const fwd = kv.forward
    const job: LoadJob = FORWARD === undefined || fwd === undefined
      ? { mode: RATE === undefined ? 'closed' : 'paced', ...(RATE === undefined ? {} : { rate: RATE }), url: `${kv.url}/echo/items/1`, headers: { authorization: `Bearer ${kv.key}` }, connections: CONNECTIONS, durationS, warmupS: 2 }
      : { mode: 'undici', url: `https://127.0.0.1:${ready.httpsPort}/items/1`, ca: fwd.caPem, tunnel: { proxy: fwd.url, token: proxyBasic(fwd.key) }, ...(FORWARD === 'h2' ? { h2Tunnels: H2_TUNNELS } : {}), headers: {}, connections: CONNECTIONS, durationS, warmupS: 2 }
    load.child.send(job)
    await measuring
    kv.process.child.kill('SIGUSR2')
    const t0 = Date.now()
    await new Promise((r) => setTimeout(r, LOAD_MS))
    kv.process.child.kill('SIGUSR2')
    const sampledMs = Date.now() - t0
    const { result } = await load.waitForMessage<{ result: LoadResult }>((m) => (m as { event?: string }).event === 'result', 60_000)
    for (let waited = 0; !existsSync(profileFile) && waited < 30_000; waited += 100) await new Promise((r) => setTimeout(r, 100))
    const { total, sites, places } = summarise((JSON.parse(readFileSync(profileFile, 'utf8')) as { head: ProfileNode }).head)
    const requests = result.rps * (sampledMs / 1000)
    const p = (s: string): void => void process.stdout.write(`${s}\n`)
    p(`\n== run ${run + 1}: ${CONNECTIONS} connections${RATE === undefined ? '' : ' paced'}${FORWARD === undefined ? '' : `, intercepted HTTPS over ${FORWARD === 'h2' ? `HTTP/2 (${H2_TUNNELS} tunnels)` : 'HTTP/1.1'}`}, ${Math.round(result.rps)} req/s; sampled ${(total / 1024 / 1024).toFixed(0)} MiB in ${sampledMs} ms ≈ ${(total / 1024 / requests).toFixed(1)} KiB allocated per request`)
    p('largest allocation sites (self):')
    for (const [k, v] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 40)) p(`  ${((100 * v) / total).toFixed(1).padStart(5)} %  ${(v / 1024 / requests).toFixed(2).padStart(6)} KiB/req  ${k}`)
    p('by package or src folder:')
    for (const [k, v] of [...places].sort((a, b) => b[1] - a[1]).slice(0, 20)) p(`  ${((100 * v) / total).toFixed(1).padStart(5)} %  ${(v / 1024 / requests).toFixed(2).padStart(6)} KiB/req  ${k}`)
    await load.stop(2000)
    await kv.process.stop(10_000)
    await upstream.stop(2000)
  }
} finally {
  await children.stopAll()
  if (process.env.KEEP !== '1') rmSync(tmp, { recursive: true, force: true })
}
