/**
 * Where does keyvalet's memory go? Starts `bin/keyvalet start` with bench/mem-breakdown.mjs preloaded,
 * lets it settle, optionally puts it under a closed-loop load, and prints one breakdown of its
 * resident memory: /proc (anonymous vs file-backed, the node binary's mapped code), the main
 * isolate (heap used/total per space, code, external, array buffers; before and after a full GC),
 * each worker thread's isolate (the audit writer's), and the modules loaded, by package.
 * Measurement tool, not part of `npm run bench`.
 *
 * Usage: node bench/idle-memory.ts [--config example|bench|forward] [--load CONNECTIONS] [--snapshot] [--runs N] [--node-flags '--max-semi-space-size=16 …']
 *   example (default): examples/keyvalet.yaml with its listeners on port 0 and a fresh data_dir;
 *   bench: bench/keyvalet.ts's config with its upstream, secret and task key (what `npm run bench` runs);
 *   forward: the same with the forward listener and its connectors (45 mint hosts), as `npm run bench` runs it with its forward or mint phase.
 *   --load N: the breakdown is taken after 4 s (env LOAD_MS) of an N-connection closed loop on GET /echo/items/1
 *   (bench config only), while the load still runs.
 *   --snapshot: also writes a heap snapshot of the main thread and prints its largest constructors.
 *   env KEEP=1: leave the temporary folder (config, data, probe files, snapshot) in place.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Children, type Managed } from './children.ts'
import { summariseSnapshot } from './heap-summary.ts'
import { startKeyvalet } from './keyvalet.ts'
import type { LoadJob } from './load.ts'
import type { UpstreamReady } from './upstream.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(REPO, 'bench')
const MiB = 1024 * 1024
const { values } = parseArgs({ options: { 'node-flags': { type: 'string', default: '' }, config: { type: 'string', default: 'example' }, load: { type: 'string' }, snapshot: { type: 'boolean' }, runs: { type: 'string', default: '1' } } })
const LOAD = values.load === undefined ? undefined : Number(values.load)
/** How long the load runs before the breakdown (env LOAD_MS, default 4000). */
const LOAD_MS = Number(process.env.LOAD_MS ?? 4000)
if (values.config !== 'example' && values.config !== 'bench' && values.config !== 'forward') throw new Error('--config is example, bench or forward')
if (LOAD !== undefined && values.config === 'example') throw new Error('--load needs --config bench or forward (a connector with an upstream and a task key)')

const NODE_FLAGS = (values['node-flags'] ?? '').split(' ').filter((x) => x !== '')
/** --config forward: as many mint hosts as `npm run bench` configures (its MINT_WARMUP + 40). */
const MINT_HOSTS = 45
const children = new Children()
const f = (bytes: number | undefined): string => (bytes === undefined ? '?' : (bytes / MiB).toFixed(1).padStart(7))

function procFigures(pid: number): Record<string, number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024
  let nodeBinary = 0
  let brkHeap = 0
  let current = ''
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) current = head[1] ?? ''
    else if (line.startsWith('Rss:') && current === process.execPath) nodeBinary += Number(/(\d+)/.exec(line)?.[1]) * 1024
    else if (line.startsWith('Rss:') && current === '[heap]') brkHeap += Number(/(\d+)/.exec(line)?.[1]) * 1024
  }
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile'), nodeBinary, brkHeap, threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]) }
}

interface HeapFigures { memoryUsage: NodeJS.MemoryUsage; heapStatistics: Record<string, number>; heapSpaces: Record<string, { size: number; used: number; committed: number }>; codeStatistics: Record<string, number> }
interface MainFile { before: HeapFigures; afterGc: HeapFigures; modules: { loaded: number; groups: Record<string, number>; internalLoadList: number }; gc: Record<string, { count: number; ms: number }>; cpuMs: number }
interface ThreadFile { threadId: number; heapStatistics: Record<string, number>; modules: { loaded: number; groups: Record<string, number> } }

async function breakdown(proc: Managed, dir: string): Promise<{ proc: Record<string, number>; main: MainFile; threads: ThreadFile[] }> {
  const figures = procFigures(proc.pid)
  proc.child.kill('SIGUSR2')
  const t0 = Date.now()
  while (!existsSync(join(dir, 'main.done'))) {
    if (Date.now() - t0 > 60_000) throw new Error('no breakdown from keyvalet within 60 s')
    await new Promise((r) => setTimeout(r, 100))
  }
  const main = JSON.parse(readFileSync(join(dir, 'main.json'), 'utf8')) as MainFile
  const threads = readdirSync(dir).filter((n) => /^thread-\d+\.json$/.test(n)).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as ThreadFile)
  return { proc: figures, main, threads }
}

function print(b: Awaited<ReturnType<typeof breakdown>>, label: string): void {
  const p = (s: string): void => void process.stdout.write(`${s}\n`)
  const { proc, main, threads } = b
  p(`\n== ${label}`)
  p(`/proc: VmRSS ${f(proc.rss)} MiB = anonymous ${f(proc.anon)} (of which [heap], the main thread's malloc arena, ${f(proc.brkHeap)}) + file-backed ${f(proc.file)} (of which the node binary's pages ${f(proc.nodeBinary)}); ${proc.threads} threads`)
  for (const [name, h] of [['main isolate', main.before], ['main isolate after a full GC', main.afterGc]] as const) {
    const m = h.memoryUsage
    p(`${name}: heapTotal ${f(m.heapTotal)} heapUsed ${f(m.heapUsed)} external ${f(m.external)} arrayBuffers ${f(m.arrayBuffers)} | committed (physical) ${f(h.heapStatistics.total_physical_size)} malloced ${f(h.heapStatistics.malloced_memory)} (peak ${f(h.heapStatistics.peak_malloced_memory)})`)
  }
  p('main heap spaces (after GC): space                     size    used  committed')
  for (const [space, s] of Object.entries(main.afterGc.heapSpaces)) p(`  ${space.padEnd(36)} ${f(s.size)} ${f(s.used)} ${f(s.committed)}`)
  const c = main.afterGc.codeStatistics
  p(`main code: bytecode+metadata ${f(c.bytecode_and_metadata_size)} code+metadata ${f(c.code_and_metadata_size)} external scripts ${f(c.external_script_source_size)}`)
  for (const t of threads) {
    const h = t.heapStatistics
    p(`worker thread ${t.threadId}: heap total ${f(h.total_heap_size)} used ${f(h.used_heap_size)} committed ${f(h.total_physical_size)} malloced ${f(h.malloced_memory)} external ${f(h.external_memory)}; ${t.modules.loaded} modules`)
  }
  const gcMs = Object.values(main.gc).reduce((n, g) => n + g.ms, 0)
  p(`main thread since start: CPU ${main.cpuMs.toFixed(0)} ms (all threads), garbage collection ${gcMs.toFixed(0)} ms = ${((100 * gcMs) / main.cpuMs).toFixed(1)} % of it: ${Object.entries(main.gc).map(([k, g]) => `${k} ${g.count}× ${g.ms.toFixed(0)} ms`).join(', ')}`)
  p(`modules loaded on the main thread: ${main.modules.loaded} (node's internal load list: ${main.modules.internalLoadList})`)
  for (const [g, n] of Object.entries(main.modules.groups)) p(`  ${String(n).padStart(5)}  ${g}`)
}

async function startExample(dir: string, extraEnv: NodeJS.ProcessEnv): Promise<Managed> {
  const text = readFileSync(join(REPO, 'examples/keyvalet.yaml'), 'utf8').replace(/127\.0\.0\.1:87\d\d/g, '127.0.0.1:0').replace(/^data_dir: .*$/m, 'data_dir: ./data')
  writeFileSync(join(dir, 'keyvalet.yaml'), text)
  const env = { ...process.env, KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), ...extraEnv }
  const nodeOptions = [...NODE_FLAGS, '--import', join(BENCH, 'mem-breakdown.mjs')].join(' ')
  const proc = children.spawnCommand('keyvalet start', join(REPO, 'bin/keyvalet'), ['start', '--config', join(dir, 'keyvalet.yaml')], { cwd: REPO, env: { ...env, NODE_OPTIONS: nodeOptions } })
  await proc.waitForStdout(/gateway listening on/, 30_000)
  return proc
}

const tmp = mkdtempSync(join(tmpdir(), 'idle-memory-'))
try {
  for (let run = 0; run < Number(values.runs); run++) {
    const dir = join(tmp, `run-${run}`)
    mkdirSync(join(dir, 'probe'), { recursive: true })
    const extraEnv = { MEM_BREAKDOWN_DIR: join(dir, 'probe'), ...(values.snapshot === true ? { MEM_BREAKDOWN_SNAPSHOT: '1' } : {}) }
    let proc: Managed
    let upstream: Managed | undefined
    let load: Managed | undefined
    if (values.config === 'example') {
      proc = await startExample(dir, extraEnv)
    } else {
      const forward = values.config === 'forward'
      upstream = children.fork('upstream', join(BENCH, 'upstream.ts'), forward ? ['--mint-hosts', String(MINT_HOSTS)] : [])
      const ready = await upstream.waitForMessage<UpstreamReady>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
      const kv = await startKeyvalet({
        children, repo: REPO, dir, upstreamPort: ready.port, nodeFlags: [...NODE_FLAGS, '--import', join(BENCH, 'mem-breakdown.mjs')], extraEnv,
        ...(forward ? { forward: { httpsPort: ready.httpsPort, upstreamCaPem: ready.caPem, mintHosts: ready.mintHosts, sseConnectors: 0 } } : {}),
      })
      proc = kv.process
      if (LOAD !== undefined) {
        load = children.fork('load', join(BENCH, 'load.ts'))
        load.expectExit()
        const measuring = load.waitForMessage((m) => (m as { event?: string }).event === 'measuring', 60_000)
        load.child.send({ mode: 'closed', url: `${kv.url}/echo/items/1`, headers: { authorization: `Bearer ${kv.key}` }, connections: LOAD, durationS: 30, warmupS: 1 } satisfies LoadJob)
        await measuring
      }
    }
    await new Promise((r) => setTimeout(r, LOAD === undefined ? 3000 : LOAD_MS))
    const b = await breakdown(proc, join(dir, 'probe'))
    print(b, `run ${run + 1}: ${values.config} config, ${LOAD === undefined ? 'idle' : `under a ${LOAD}-connection closed loop`}`)
    if (values.snapshot === true) process.stdout.write(`\nlargest in the main heap (self size, by constructor):\n${summariseSnapshot(readFileSync(join(dir, 'probe', 'main.heapsnapshot'), 'utf8'), 30)}\n`)
    await load?.stop(2000)
    await proc.stop(10_000)
    await upstream?.stop(2000)
  }
} finally {
  await children.stopAll()
  if (process.env.KEEP !== '1') rmSync(tmp, { recursive: true, force: true })
}
