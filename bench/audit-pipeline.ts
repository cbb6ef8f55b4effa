/**
 * `node bench/audit-pipeline.ts`: commits per second of the PostgreSQL audit append (the one
 * statement of store/postgres/audit.ts) for a burst of batches, awaited one by one (what the audit
 * log does: one batch in flight) and sent without waiting on one reserved connection (pipelined:
 * PostgreSQL runs them in order, each its own transaction). The server is the tests' (embedded,
 * loopback, fsync off), and, with PIPELINE_DELAY_MS, the same behind a TCP relay that holds each
 * chunk that long each way (a server on another host). AUDIT_BATCHES (default 400) batches of
 * AUDIT_BATCH rows (default 1,8), rounds alternating; medians of 3 rounds.
 *
 * Why the audit log does not pipeline although a burst commits 2.7–12× faster so: a pipelined
 * AuditLog (4 batches in flight; commit 7c4eedb, reverted) made no difference to what requests
 * see, since group commit already lets a batch grow while one is in flight. 16 clients each
 * waiting for its record: 5277 vs 5380 records/s (loopback), 2392 vs 2205 (relay); 2000 records/s
 * arriving on their own, wait p50 8.5 vs 11.2 ms (loopback), 8.1 vs 9.4 ms (relay): smaller
 * batches, more commits, more CPU (2 cores, load average 14–17).
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { postgresAudit } from '../src/store/postgres/audit.ts'
import { connect } from '../src/store/postgres/connect.ts'
import { migrate } from '../src/store/postgres/migrations.ts'
import type { NewAuditRow } from '../src/store/store.ts'
import { startTestPostgres } from '../test/helpers/postgres.ts'

const BATCHES = Number(process.env.AUDIT_BATCHES ?? 400)
const SIZES = (process.env.AUDIT_BATCH ?? '1,8').split(',').map(Number)
const DELAYS = (process.env.PIPELINE_DELAY_MS ?? '0,0.5').split(',').map(Number)
const LINE = JSON.stringify({ note: 'x'.repeat(600) })

function rowsFor(instance: string, from: number, size: number): NewAuditRow[] {
  const rows: NewAuditRow[] = []
  for (let i = from; i < from + size; i++) {
    rows.push({ instance, chainSeq: i, hash: i.toString(16).padStart(64, '0'), line: LINE, facets: { time: new Date().toISOString(), session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'ws', task: 'task-1', connector: 'demo', decision: 'allow', error: null, mode: 'gateway', phase: null } })
  }
  return rows
}

/** A TCP relay to `port` that delays each chunk by `ms` in each direction (order kept). */
async function relay(port: number, ms: number): Promise<{ port: number; server: Server }> {
  const pipe = (from: Socket, to: Socket) => {
    let chain = Promise.resolve()
    from.on('data', (chunk) => { chain = chain.then(() => sleep(ms)).then(() => void to.write(chunk)) })
    from.on('end', () => void chain.then(() => to.end()))
    from.on('error', () => to.destroy())
  }
  const server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1')
    pipe(client, upstream)
    pipe(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as { port: number }).port, server }
}

const pg = await startTestPostgres()
const results: string[] = []
try {
  for (const delay of DELAYS) {
    const location = await pg.database()
    const via = delay === 0 ? undefined : await relay(location.port, delay)
    const sql = connect(via === undefined ? location : { ...location, port: via.port }, { max: 4 })
    await migrate(sql)
    const reserved = await sql.reserve()
    let instance = 0
    for (const size of SIZES) {
      const rates: Record<string, number[]> = { awaited: [], pipelined: [] }
      for (let round = 0; round < 3; round++) {
        for (const mode of ['awaited', 'pipelined'] as const) {
          const chain = `ins_${mode}_${++instance}`
          const repo = postgresAudit(mode === 'awaited' ? sql : (reserved as unknown as postgres.Sql))
          const t0 = performance.now()
          if (mode === 'awaited') {
            for (let b = 0; b < BATCHES; b++) await repo.append(rowsFor(chain, 1 + b * size, size))
          } else {
            const all: Promise<unknown>[] = []
            for (let b = 0; b < BATCHES; b++) all.push(repo.append(rowsFor(chain, 1 + b * size, size)))
            await Promise.all(all)
          }
          rates[mode]?.push(BATCHES / ((performance.now() - t0) / 1000))
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
      const a = median(rates.awaited ?? [])
      const p = median(rates.pipelined ?? [])
      results.push(`delay ${delay} ms each way, ${size} row(s) a batch: awaited ${Math.round(a)} commits/s, pipelined ${Math.round(p)} commits/s (${(p / a).toFixed(2)}×)`)
      console.log(results.at(-1))
    }
    reserved.release()
    await sql.end()
    via?.server.close()
  }
} finally {
  await pg.stop()
}
