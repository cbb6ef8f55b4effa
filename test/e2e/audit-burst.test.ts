import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { AuditWriter } from '../../src/audit/audit-writer.ts'
import type { AuditFields } from '../../src/audit/record.ts'
import { verifyAudit } from '../../src/audit/verify.ts'
import type { PostgresLocation } from '../../src/store/location.ts'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { connect, type Sql } from '../../src/store/postgres/connect.ts'
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts'

/** Appends made per turn of the event loop, and turns: batches follow each other faster than PostgreSQL acknowledges them. */
const PER_TURN = 5
const TURNS = 40

let server: TestPostgres
const dirs: string[] = []
before(async () => {
  server = await startTestPostgres()
})
after(async () => {
  await server?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const fields = (i: number): AuditFields => ({
  request_id: `req_${i}`, mode: 'gateway', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
  method: 'GET', path: `/r/${i}`, query_keys: [], decision: 'allow', reason: 'rule_matched', rule: null, credential: null,
  status: 200, upstream_status: 200, error: null, bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 1,
})

/** The database's owner on it (what keyvalet's migrations ran as): a trigger the test makes on the audit table. */
async function asOwner<T>(location: PostgresLocation, work: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = connect(location, { max: 1 })
  try {
    return await work(sql)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** A trigger that refuses the row `chainSeq` of any chain the first `times` times it is inserted (a sequence counts: it is not rolled back). */
async function refuseRow(location: PostgresLocation, chainSeq: number, times: number): Promise<void> {
  await asOwner(location, (sql) => sql.unsafe(`CREATE SEQUENCE refused_rows;
    CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.chain_seq = ${chainSeq} AND nextval('refused_rows') <= ${times} THEN RAISE EXCEPTION 'refused by the test'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_row BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_row();`))
}

/** Appends PER_TURN records in each of TURNS turns of the event loop without waiting; `during(turn)` runs at the start of each turn. */
async function burst(writer: AuditWriter, during: (turn: number) => Promise<void> | void = () => {}) {
  const appended: Promise<{ i: number; seq: number | Error }>[] = []
  for (let turn = 0; turn < TURNS; turn++) {
    await new Promise((resolve) => setImmediate(resolve))
    await during(turn)
    for (let k = 0; k < PER_TURN; k++) {
      const i = turn * PER_TURN + k
      appended.push(writer.append(fields(i)).then((seq) => ({ i, seq }), (err: Error) => ({ i, seq: err })))
    }
  }
  return Promise.all(appended)
}

/** The request ids in the store, each with how often it is there; and the chain verified. */
async function stored(store: PostgresStore, key: Buffer) {
  const counts = new Map<string, number>()
  for (const r of await store.audit.read(0, 100_000)) {
    const id = (JSON.parse(r.line) as { request_id?: string }).request_id
    if (id?.startsWith('req_') === true) counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return { counts, verified: await verifyAudit(store.audit, key) }
}

async function writerOn(location: PostgresLocation, key: Buffer): Promise<AuditWriter> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-audit-burst-'))
  dirs.push(dir)
  return AuditWriter.start({ store: location, key, reserveBytes: 65536, thread: false, spool: { dir, maxBytes: 1 << 20, fsync: false } })
}

describe('a burst of audit batches on PostgreSQL, one failing', () => {
  it('a batch refused by the server (a trigger): every record is committed once, by the retry of those refused, and the chain verifies', async () => {
    const location = await server.database()
    const key = randomBytes(32)
    const store = await PostgresStore.open(location)
    const writer = await writerOn(location, key)
    try {
      await refuseRow(location, 31, 1)
      const results = await burst(writer)
      assert.deepEqual(results.filter((r) => r.seq instanceof Error), [], 'no request failed: the refused records were committed again')
      const { counts, verified } = await stored(store, key)
      assert.equal(counts.size, PER_TURN * TURNS, 'no record lost')
      assert.deepEqual([...counts.values()].filter((n) => n !== 1), [], 'none twice')
      assert.equal(verified.ok, true, JSON.stringify(verified))
      const [tripped] = await asOwner(location, (sql) => sql`SELECT last_value::int AS n FROM refused_rows`)
      assert.ok(Number(tripped?.n) >= 1, 'the trigger refused a batch')
    } finally {
      await writer.close()
      await store.close()
    }
  })

  it('the connections killed mid-burst (pg_terminate_backend): the batch in flight goes to the spool and every record reaches the chain once; it verifies', async () => {
    const location = await server.database()
    const key = randomBytes(32)
    const store = await PostgresStore.open(location)
    const writer = await writerOn(location, key)
    let killed = 0
    try {
      const results = await burst(writer, async (turn) => {
        if (turn !== 10 && turn !== 25) return
        const ended = await server.admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'keyvalet' AND datname = ${location.database} AND pid <> pg_backend_pid()`
        killed += ended.length
      })
      assert.ok(killed >= 1, 'the connections were there to kill')
      assert.deepEqual(results.filter((r) => r.seq instanceof Error).map((r) => r.i), [], 'every append counted as written (committed or spooled)')
      // The spool is flushed before the next batch, or by the engine's timer: bounded wait for it.
      let last = await stored(store, key)
      for (let i = 0; i < 100 && last.counts.size < PER_TURN * TURNS; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        last = await stored(store, key)
      }
      assert.equal(last.counts.size, PER_TURN * TURNS, 'no record lost')
      assert.deepEqual([...last.counts.values()].filter((n) => n !== 1), [], 'none twice')
      assert.equal(last.verified.ok, true, JSON.stringify(last.verified))
    } finally {
      await writer.close()
      await store.close()
    }
  })
})
