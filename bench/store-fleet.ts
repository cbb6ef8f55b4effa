/**
 * Part of the store phase: 1 vs 2 keyvalet instances on one PostgreSQL database. Each instance is
 * its own `keyvalet start` process (as a fleet runs it: its own pool, change feed and audit
 * chain); both run throughout. A round sends BENCH_STORE_REQUESTS requests from 16 concurrent
 * clients (this process, beside the upstream) either all to instance A ("1 instance", B idle) or
 * split evenly over A and B ("2 instances"); rounds alternate, the median is kept. Every process's
 * CPU (keyvalet A, B, the PostgreSQL server's processes, this process) is taken from /proc over
 * the median round, as cores used (CPU seconds per second of the round).
 */

import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { Children, type Managed } from './children.ts'
import { cpuSeconds } from './rss.ts'
import { median } from './stats.ts'

export interface FleetRound {
  readonly instances: number
  readonly rps: number
  /** Cores used over the round, by process. */
  readonly cores: { readonly [name: string]: number }
}

export interface FleetResult {
  readonly requests: number
  readonly rounds: number
  /** The median round of each shape (by req/s). */
  readonly one: FleetRound
  readonly two: FleetRound
  readonly cpus: number
}

const CONCURRENCY = 16
const ROUNDS = 3
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Every descendant of `pid` (the PostgreSQL postmaster and its backends, under this process). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1])
      const list = children.get(ppid) ?? []
      list.push(Number(entry))
      children.set(ppid, list)
    } catch {
      // Gone meanwhile.
    }
  }
  const all: number[] = []
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      all.push(c)
      walk(c)
    }
  }
  walk(pid)
  return all
}

export async function runFleetBench(opts: {
  readonly storeBlock: string
  readonly files: Record<string, string>
  readonly upstreamUrl: string
  readonly requests: number
  readonly config: (upstreamUrl: string, store: string) => string
}): Promise<FleetResult> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-bench-fleet-'))
  const children = new Children()
  try {
    for (const [name, text] of Object.entries(opts.files)) writeFileSync(join(dir, name), text, { mode: 0o600 })
    const configFile = join(dir, 'keyvalet.yaml')
    writeFileSync(configFile, `${opts.config(opts.upstreamUrl, opts.storeBlock)}data_dir: ./data\n`)
    const env: NodeJS.ProcessEnv = { ...process.env, KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
    delete env.KEYVALET_CONFIG
    const cli = join(REPO, 'src/cli/main.ts')
    const base = { cwd: dir, env, timeoutMs: 60_000 }
    await children.run('keyvalet secret set', [cli, 'secret', 'set', 'api-token', '--config', configFile], { ...base, input: 'bench-secret-0123456789' })
    const created = await children.run('keyvalet session create', [cli, 'session', 'create', '--config', configFile, '--agent', 'bench', '--user', 'bench',
      '--workspace', 'bench', '--grant', 'api:read', '--ttl', '1h', '--json'], base)
    const key = String((JSON.parse(created.split('\n').find((l) => l.trim().startsWith('{')) ?? '{}') as { key?: unknown }).key)
    const fleet: { proc: Managed; url: string }[] = []
    for (let i = 0; i < 2; i++) {
      const proc = children.spawn(`keyvalet start (instance ${i})`, [cli, 'start', '--config', configFile], { cwd: dir, env })
      const m = await proc.waitForStdout(/gateway listening on (http:\/\/127\.0\.0\.1:\d+)/, 60_000)
      fleet.push({ proc, url: m[1] as string })
    }
    const load = async (urls: readonly string[], total: number): Promise<number> => {
      let next = 0
      const t0 = performance.now()
      await Promise.all(Array.from({ length: CONCURRENCY }, async (_, c) => {
        const url = `${urls[c % urls.length] as string}/api/items/1`
        while (next++ < total) {
          const res = await request(url, { headers: { authorization: `Bearer ${key}` } })
          await res.body.dump()
          if (res.statusCode !== 200) throw new Error(`fleet bench: got ${res.statusCode} (${String(res.headers['x-keyvalet-error'])})`)
        }
      }))
      return total / ((performance.now() - t0) / 1000)
    }
    const processes = (): Record<string, number[]> => {
      const keyvalets = new Set(fleet.map((f) => f.proc.pid))
      const server = descendants(process.pid).filter((pid) => !keyvalets.has(pid) && !fleet.some((f) => descendants(f.proc.pid).includes(pid)))
      return { 'keyvalet A': [fleet[0]?.proc.pid ?? 0], 'keyvalet B': [fleet[1]?.proc.pid ?? 0], PostgreSQL: server, 'bench (clients, upstream)': [process.pid] }
    }
    const round = async (instances: number): Promise<FleetRound> => {
      const urls = fleet.slice(0, instances).map((f) => f.url)
      const pids = processes()
      const cpu = (): Record<string, number> => Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, list.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0)]))
      const before = cpu()
      const t0 = performance.now()
      const rps = await load(urls, opts.requests)
      const seconds = (performance.now() - t0) / 1000
      const after = cpu()
      return { instances, rps, cores: Object.fromEntries(Object.keys(after).map((name) => [name, ((after[name] ?? 0) - (before[name] ?? 0)) / seconds])) }
    }
    await load(fleet.map((f) => f.url), 1000) // warm both: connections, JIT, kept reads
    const rounds: FleetRound[] = []
    for (let r = 0; r < ROUNDS; r++) for (const instances of [1, 2]) rounds.push(await round(instances))
    const middle = (instances: number): FleetRound => {
      const list = rounds.filter((r) => r.instances === instances)
      const mid = median(list.map((r) => r.rps))
      return list.reduce((best, r) => (Math.abs(r.rps - mid) < Math.abs(best.rps - mid) ? r : best))
    }
    return { requests: opts.requests, rounds: ROUNDS, one: middle(1), two: middle(2), cpus: (await import('node:os')).availableParallelism() }
  } finally {
    await children.stopAll()
    rmSync(dir, { recursive: true, force: true })
  }
}
