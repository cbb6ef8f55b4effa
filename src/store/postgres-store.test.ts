import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestPostgres, type TestPostgres } from '../../test/helpers/postgres.ts'
import { storeContract } from '../../test/contract/store.contract.ts'
import { PostgresStore } from './postgres-store.ts'
import { connect } from './postgres/connect.ts'
import { MIGRATIONS } from './postgres/migrations.ts'
import type { AuditFilter, AuditRow } from './store.ts'

let server: TestPostgres
before(async () => {
  server = await startTestPostgres()
})
after(() => server.stop())

storeContract('PostgresStore', async () => PostgresStore.open(await server.database(), { max: 2 }))
// As a serving instance opens it: request-path reads kept, exact through its own writes too.
storeContract('PostgresStore keeping reads', async () => PostgresStore.open(await server.database(), { max: 2, keptReads: { resyncMs: 250, graceMs: 30_000 } }))

describe('PostgresStore migrations', () => {
  it('instances starting at once on an empty database apply each migration once, under the lock', async () => {
    const db = await server.database()
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresStore.open(db, { max: 1 })))
    try {
      await stores[0]?.audit.append([{ instance: 'ins_a', chainSeq: 1, hash: 'h1', line: '{}' }])
      assert.equal((await stores[3]?.audit.last())?.chainSeq, 1)
    } finally {
      for (const store of stores) await store.close()
    }
    const sql = connect(db, { max: 1 })
    try {
      const versions = await sql`SELECT version FROM keyvalet_schema ORDER BY version`
      assert.deepEqual(versions.map((r) => r.version), MIGRATIONS.map((_, i) => i + 1))
    } finally {
      await sql.end()
    }
  })

  it('refuses a database whose schema is newer than this keyvalet', async () => {
    const db = await server.database()
    await (await PostgresStore.open(db, { max: 1 })).close()
    const sql = connect(db, { max: 1 })
    try {
      await sql`INSERT INTO keyvalet_schema (version, applied_at) VALUES (${MIGRATIONS.length + 1}, 0)`
    } finally {
      await sql.end()
    }
    await assert.rejects(PostgresStore.open(db, { max: 1 }), new RegExp(`schema has version ${MIGRATIONS.length + 1}, newer than this keyvalet understands \\(${MIGRATIONS.length}\\)`))
  })

  it('an audit log written before the query columns and chains gets them filled from its lines, and stays append-only', async () => {
    const db = await server.database()
    const record = (seq: number, agent: string | null, decision: string, mode = 'gateway') => JSON.stringify({ seq, time: `2026-01-01T00:00:0${seq}.000Z`, mode, agent, session: 'ses_x', user: 'u', workspace: 'w', task: 't', connector: 'c', decision, error: decision === 'deny' ? 'policy_denied' : null })
    const sql = connect(db, { max: 1 })
    try {
      // The schema as version 2 left it, with records in it.
      await sql`CREATE TABLE keyvalet_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`
      for (const [i, migration] of MIGRATIONS.slice(0, 2).entries()) {
        await sql.unsafe(migration)
        await sql`INSERT INTO keyvalet_schema (version, applied_at) VALUES (${i + 1}, 0)`
      }
      for (const [seq, line] of [[1, record(1, 'bot', 'allow')], [2, record(2, 'other', 'deny')], [3, 'not json'], [4, '[1]'], [5, record(5, null, 'allow', 'admin')]] as const) {
        await sql`INSERT INTO audit (seq, hash, line) VALUES (${seq}, ${`h${seq}`}, ${line})`
      }
    } finally {
      await sql.end()
    }
    const store = await PostgresStore.open(db, { max: 1 })
    try {
      const seqs = async (filter: AuditFilter) => (await store.audit.query(filter, { order: 'asc', limit: 10 })).map((r) => r.seq)
      assert.deepEqual(await seqs({ agent: 'other' }), [2])
      assert.deepEqual(await seqs({ error: 'policy_denied', since: '2026-01-01T00:00:02.000Z' }), [2])
      assert.deepEqual(await seqs({ user: 'u' }), [1, 2, 5])
      assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5])
      assert.deepEqual((await store.audit.read(0, 4)).map((r) => r.line), [record(1, 'bot', 'allow'), record(2, 'other', 'deny'), 'not json', '[1]'])
      const summary = await store.audit.summary({ since: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:01:00.000Z', top: 5 })
      assert.deepEqual(summary.minutes, [{ minute: '2026-01-01T00:00', decision: 'allow', count: 1 }, { minute: '2026-01-01T00:00', decision: 'deny', count: 1 }], 'the requests, not the admin call')
      // They are the chain '' (from before per-instance chains), each at its old place in it; new rows are numbered after them.
      assert.deepEqual((await store.audit.readChain('', 0, 10)).map((r) => [r.seq, r.instance, r.chainSeq]), [[1, '', 1], [2, '', 2], [3, '', 3], [4, '', 4], [5, '', 5]])
      const [next] = await store.audit.append([{ instance: 'ins_a', chainSeq: 1, hash: 'x', line: '{}' }])
      assert.equal(next?.seq, 6)
    } finally {
      await store.close()
    }
    const raw = connect(db, { max: 1 })
    try {
      await assert.rejects(raw`UPDATE audit SET agent = 'x' WHERE seq = 1`, /audit rows are append-only/)
    } finally {
      await raw.end()
    }
  })

  it('keeps the audit log append-only even for its owner', async () => {
    const db = await server.database()
    const store = await PostgresStore.open(db, { max: 1 })
    await store.audit.append([{ instance: 'ins_a', chainSeq: 1, hash: 'h1', line: '{}' }])
    await store.close()
    const sql = connect(db, { max: 1 })
    try {
      for (const statement of ['UPDATE audit SET line = \'x\'', 'DELETE FROM audit', 'TRUNCATE audit']) {
        await assert.rejects(sql.unsafe(statement), /audit rows are append-only/, statement)
      }
    } finally {
      await sql.end()
    }
  })

  it('spends exactly the limit when three instances spend from one counter at once', async () => {
    const db = await server.database()
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open(db, { max: 4 })))
    try {
      const now = Date.now()
      const spends = Array.from({ length: 100 }, (_, i) => (stores[i % 3] as PostgresStore).counters.spend({ key: 'session:ses_1:requests', amount: 1, limit: 10, now, expiresAt: now + 60_000 }))
      const results = await Promise.all(spends)
      assert.equal(results.filter(Boolean).length, 10)
      assert.equal(await stores[1]?.counters.used('session:ses_1:requests', now), 10)
    } finally {
      for (const store of stores) await store.close()
    }
  })

  it('concurrent appenders each append their own chain; none forks', async () => {
    const db = await server.database()
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open(db, { max: 3 })))
    try {
      const appendChain = async (store: PostgresStore, instance: string): Promise<void> => {
        let last: AuditRow | undefined
        for (let i = 0; i < 20; i++) {
          const chainSeq = (last?.chainSeq ?? 0) + 1
          ;[last] = await store.audit.append([{ instance, chainSeq, hash: `h${instance}${chainSeq}`, line: JSON.stringify({ prev: last?.hash ?? null }) }])
        }
      }
      await Promise.all(stores.map((store, i) => appendChain(store, `ins_${i}`)))
      assert.equal(new Set((await stores[0]?.audit.read(0, 100) ?? []).map((r) => r.seq)).size, 60)
      for (const i of [0, 1, 2]) {
        const rows = await stores[0]?.audit.readChain(`ins_${i}`, 0, 100) ?? []
        assert.deepEqual(rows.map((r) => r.chainSeq), Array.from({ length: 20 }, (_, k) => k + 1))
        rows.forEach((row, k) => assert.equal((JSON.parse(row.line) as { prev: string | null }).prev, k === 0 ? null : `hins_${i}${k}`))
      }
    } finally {
      for (const store of stores) await store.close()
    }
  })

  it('numbers audit rows in commit order across instances: a reader going by seq never skips a row committed after a higher one was read', async () => {
    const db = await server.database()
    const [x, y] = await Promise.all([1, 2].map(() => PostgresStore.open(db, { max: 2 }))) as [PostgresStore, PostgresStore]
    const blocker = connect(db, { max: 1 })
    const row = (instance: string, chainSeq: number) => ({ instance, chainSeq, hash: `h${instance}${chainSeq}`, line: JSON.stringify({ instance, chainSeq }) })
    const waiting = async (): Promise<number> => {
      const [r] = await server.admin`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.database} AND wait_event_type = 'Lock'`
      return Number(r?.n ?? 0)
    }
    const until = async (what: string, done: () => Promise<boolean>): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        if (await done()) return
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      assert.fail(`not within 4 s: ${what}`)
    }
    let release = (): void => {}
    try {
      await x.audit.append([row('ins_x', 1)])
      let cursor = (await x.audit.last())?.seq ?? 0
      // An uncommitted row at ins_x's place 2 (a fork attempt that will roll back): instance x's
      // append of that place waits for it half-way through its statement, its row numbered.
      const released = new Promise<void>((resolve) => { release = resolve })
      let inserted = false
      const fork = blocker.begin(async (tx) => {
        await tx`INSERT INTO audit (instance, chain_seq, hash, line) VALUES ('ins_x', 2, 'fork', '{}')`
        inserted = true
        await released
        throw new Error('roll back')
      }).catch(() => undefined)
      await until('the fork row is inserted', async () => inserted)
      const xAppend = x.audit.append([row('ins_x', 2)])
      await until('x waits for the fork', async () => (await waiting()) >= 1)
      // Instance y appends meanwhile: it commits now (numbered after x's row) or waits for x.
      let ySettled = false
      const yAppend = y.audit.append([row('ins_y', 1)]).finally(() => { ySettled = true })
      await until('y committed or waits', async () => ySettled || (await waiting()) >= 2)
      const seen: string[] = []
      const readOn = async (): Promise<void> => {
        for (const r of await x.audit.read(cursor, 100)) {
          seen.push(`${r.instance}:${r.chainSeq}`)
          cursor = r.seq
        }
      }
      await readOn()
      release()
      await fork
      await Promise.all([xAppend, yAppend])
      await readOn()
      assert.deepEqual(seen.sort(), ['ins_x:2', 'ins_y:1'], 'every row committed after the cursor was read, once')
    } finally {
      release()
      await blocker.end({ timeout: 1 })
      await x.close()
      await y.close()
    }
  })
})
