/**
 * `node bench/sse-memory.ts [STREAMS]`: what one open event stream costs keyvalet in memory, and
 * in which objects. Starts the bench upstream and keyvalet (bench/mem-breakdown.mjs preloaded),
 * takes a breakdown with no stream open, opens STREAMS (default 1000) event streams through the
 * gateway (bench/sse.ts), waits for every first event, and takes a heap snapshot: prints RSS and
 * heap per stream, and the constructors whose instances grew, by bytes. A heap snapshot grows RSS
 * itself: with SNAPSHOT=0 none is taken and the RSS per stream is the process's own. Measurement
 * tool, not part of `npm run bench`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Children } from './children.ts'
import { groupClosures, groupSnapshot } from './heap-summary.ts'
import { startKeyvalet } from './keyvalet.ts'
import { readRss } from './rss.ts'
import type { SseJob, SseOpenResult } from './sse.ts'
import type { UpstreamReady } from './upstream.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const STREAMS = Number(process.argv[2] ?? 1000)
const PER_CONNECTOR = 250
const MiB = 1024 * 1024
const SNAPSHOTS = process.env.SNAPSHOT !== '0'

const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'sse-memory-'))

/** SIGUSR2 → mem-breakdown.mjs writes main.json (and the snapshot); resolves once it is whole. */
async function snapshot(pid: number, dir: string): Promise<{ heapUsed: number; groups: Map<string, { bytes: number; count: number }>; closures: Map<string, { bytes: number; count: number }> }> {
  if (!SNAPSHOTS) return { heapUsed: 0, groups: new Map(), closures: new Map() }
  rmSync(join(dir, 'main.done'), { force: true })
  process.kill(pid, 'SIGUSR2')
  for (let i = 0; i < 600 && !existsSync(join(dir, 'main.done')); i++) await new Promise((r) => setTimeout(r, 100))
  const main = JSON.parse(readFileSync(join(dir, 'main.json'), 'utf8')) as { afterGc: { memoryUsage: { heapUsed: number } } }
  const text = readFileSync(join(dir, 'main.heapsnapshot'), 'utf8')
  return { heapUsed: main.afterGc.memoryUsage.heapUsed, groups: groupSnapshot(text), closures: groupClosures(text, REPO) }
}

try {
  const upstream = children.fork('upstream', join(BENCH, 'upstream.ts'))
  const ready = await upstream.waitForMessage<UpstreamReady>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
  const probe = join(tmp, 'probe')
  mkdirSync(probe)
  const connectors = Math.ceil(STREAMS / PER_CONNECTOR)
  const kv = await startKeyvalet({
    children, repo: REPO, dir: tmp, upstreamPort: ready.port, nodeFlags: ['--max-semi-space-size=16', '--import', join(BENCH, 'mem-breakdown.mjs')],
    extraEnv: { MEM_BREAKDOWN_DIR: probe, MEM_BREAKDOWN_SNAPSHOT: SNAPSHOTS ? '1' : '0' },
    forward: { httpsPort: ready.httpsPort, upstreamCaPem: ready.caPem, mintHosts: [], sseConnectors: connectors },
  })
  if (kv.forward === undefined) throw new Error('no forward task key')
  // RSS first: the snapshot itself grows it.
  const rssBefore = readRss(kv.process.pid) ?? 0
  const before = await snapshot(kv.process.pid, probe)
  const client = children.fork('sse client', join(BENCH, 'sse.ts'))
  client.expectExit()
  const opened = client.waitForMessage<{ event: string; result: SseOpenResult }>((m) => (m as { event?: string }).event === 'open', 120_000)
  client.child.send({ origin: kv.url, headers: { authorization: `Bearer ${kv.forward.key}` }, paths: kv.forward.connectors.sse.slice(0, connectors).map((c) => `/${c}/events`), streams: STREAMS, openConcurrency: 256, openTimeoutMs: 60_000 } satisfies SseJob)
  const open = (await opened).result
  await new Promise((r) => setTimeout(r, 2000))
  const rssAfter = readRss(kv.process.pid) ?? 0
  const after = await snapshot(kv.process.pid, probe)
  const n = open.firstEvents
  console.log(`${n} of ${STREAMS} streams open; RSS ${(rssBefore / MiB).toFixed(1)} → ${(rssAfter / MiB).toFixed(1)} MiB: ${((rssAfter - rssBefore) / n / 1024).toFixed(1)} KiB per stream; heap used after a full GC ${((after.heapUsed - before.heapUsed) / n / 1024).toFixed(1)} KiB per stream`)
  const grownOf = (afterGroups: Map<string, { bytes: number; count: number }>, beforeGroups: Map<string, { bytes: number; count: number }>, top: number) => [...afterGroups].map(([name, g]) => {
    const b = beforeGroups.get(name) ?? { bytes: 0, count: 0 }
    return { name, bytes: g.bytes - b.bytes, count: g.count - b.count }
  }).filter((g) => g.bytes > 0).sort((a, b) => b.bytes - a.bytes).slice(0, top)
  console.log('grown, per stream (bytes, objects):')
  for (const g of grownOf(after.groups, before.groups, 40)) console.log(`  ${(g.bytes / n).toFixed(0).padStart(7)} B ${(g.count / n).toFixed(2).padStart(7)}  ${g.name}`)
  console.log('closures grown, per stream, by function (bytes of closure and its context, closures):')
  for (const g of grownOf(after.closures, before.closures, 40)) console.log(`  ${(g.bytes / n).toFixed(0).padStart(7)} B ${(g.count / n).toFixed(2).padStart(7)}  ${g.name}`)
  client.child.send({ cmd: 'close' })
} finally {
  await children.stopAll()
  rmSync(tmp, { recursive: true, force: true })
}
