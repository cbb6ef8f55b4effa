import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { auditPathFor, SqliteStore } from '../store/sqlite-store.ts'
import { AuditLog, auditHash, GENESIS_PREV } from './audit-log.ts'
import { canonicalJson } from './canonical-json.ts'
import type { AuditFields, AuditRecord } from './record.ts'
import { verifyAudit } from './verify.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-audit-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const INSTANCE = 'ins_00000000000000a1'

function fields(i: number, extra: Partial<AuditFields> = {}): AuditFields {
  return {
    request_id: `req_${i}`, mode: 'gateway', session: 'ses_1', agent: 'a', user: 'u', workspace: 'w', task: 't',
    connector: 'github', method: 'GET', path: `/repos/${i}`, query_keys: ['page'], decision: 'allow',
    reason: 'rule_matched', rule: 'read-repos', credential: 'github-token', status: 200, upstream_status: 200,
    error: null, bytes_in: 0, bytes_out: 10 * i, redactions: 0, latency_ms: 3, ...extra,
  }
}

describe('AuditLog and verifyAudit', () => {
  let path: string
  let store: SqliteStore
  let key: Buffer
  let log: AuditLog
  let now: number

  beforeEach(() => {
    path = join(root, `a${++n}`, 'keyvalet.db')
    store = SqliteStore.open(path)
    key = randomBytes(32)
    now = Date.UTC(2025, 0, 2, 3, 4, 5, 678)
    log = new AuditLog(store.audit, key, () => now++, INSTANCE)
  })
  afterEach(() => store.close())

  /** Runs SQL on the file through a raw connection, with the append-only triggers dropped. */
  function tamper(sql: (db: DatabaseSync) => void): void {
    const db = new DatabaseSync(auditPathFor(path))
    db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete')
    sql(db)
    db.close()
  }

  async function writeChain(count: number): Promise<AuditRecord[]> {
    const out: AuditRecord[] = []
    for (let i = 1; i <= count; i++) out.push(await log.append(fields(i)))
    return out
  }

  it('writes concurrent appends as one unbroken chain, each resolved with its own record', async () => {
    const records = await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(fields(i + 1))))
    assert.deepEqual(records.map((r) => r.request_id), Array.from({ length: 100 }, (_, i) => `req_${i + 1}`))
    assert.deepEqual(records.map((r) => r.seq), Array.from({ length: 100 }, (_, i) => i + 1))
    const verdict = await verifyAudit(store.audit, key)
    assert.deepEqual(verdict.ok && verdict.count, 100)
  })

  it('builds a chain: instance, seq, time, prev, keyed hash, canonical line', async () => {
    const [first, second] = await writeChain(2)
    assert.ok(first && second)
    assert.equal(first.instance, INSTANCE)
    assert.equal(first.seq, 1)
    assert.equal(first.prev, GENESIS_PREV)
    assert.equal(first.time, '2025-01-02T03:04:05.678Z')
    assert.equal(second.prev, first.hash)
    const { hash, ...body } = second
    assert.equal(hash, auditHash(key, body))
    const rows = await store.audit.read(0, 10)
    assert.equal(rows[1]?.line, canonicalJson(second))
    assert.equal(rows[1]?.hash, second.hash)
    assert.equal(rows[1]?.line.includes('\n'), false)
  })

  it('omits an empty detail and keeps a non-empty one', async () => {
    const a = await log.append(fields(1, { detail: {} }))
    const b = await log.append(fields(2, { detail: { why: 'x' } }))
    assert.equal('detail' in a, false)
    assert.deepEqual(b.detail, { why: 'x' })
    assert.equal((await verifyAudit(store.audit, key)).ok, true)
  })

  it('fields cannot override the chain position', async () => {
    await writeChain(1)
    const sneaky = { ...fields(2), seq: 99, prev: 'f'.repeat(64), instance: 'ins_ffffffffffffffff' } as unknown as AuditFields
    const record = await log.append(sneaky)
    assert.equal(record.seq, 2)
    assert.equal(record.instance, INSTANCE)
    assert.notEqual(record.prev, 'f'.repeat(64))
  })

  it('an intact chain verifies, across pages', async () => {
    const records = await writeChain(25)
    for (const pageSize of [1, 7, 25, 1000]) {
      assert.deepEqual(await verifyAudit(store.audit, key, { pageSize }), {
        ok: true, count: 25, chains: [{ instance: INSTANCE, count: 25, lastHash: records.at(-1)?.hash, open: [] }],
      })
    }
  })

  it('an empty log verifies with count 0 and no chain', async () => {
    assert.deepEqual(await verifyAudit(store.audit, key), { ok: true, count: 0, chains: [] })
  })

  it('an edited field is hash_mismatch at that seq', async () => {
    await writeChain(10)
    tamper((db) => db.exec(`UPDATE audit SET line = replace(line, '"decision":"allow"', '"decision":"deny"') WHERE seq = 6`))
    const result = await verifyAudit(store.audit, key, { pageSize: 4 })
    assert.equal(result.ok, false)
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq, result.count], ['hash_mismatch', 6, 5])
  })

  it('a changed hash column is hash_mismatch', async () => {
    await writeChain(3)
    tamper((db) => db.exec(`UPDATE audit SET hash = '${'a'.repeat(64)}' WHERE seq = 2`))
    const result = await verifyAudit(store.audit, key)
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq], ['hash_mismatch', 2])
  })

  it('a deleted middle row is seq_gap at the missing seq', async () => {
    await writeChain(10)
    tamper((db) => db.exec('DELETE FROM audit WHERE seq = 4'))
    const result = await verifyAudit(store.audit, key, { pageSize: 3 })
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq, result.count], ['seq_gap', 4, 3])
  })

  it('a non-JSON line is unparseable', async () => {
    await writeChain(3)
    tamper((db) => db.exec(`UPDATE audit SET line = 'garbage' WHERE seq = 3`))
    const result = await verifyAudit(store.audit, key)
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq], ['unparseable', 3])
  })

  it('a validly keyed record from another chain is chain_broken', async () => {
    await writeChain(3)
    // Same key, other database: record 2 of a different history.
    const other = SqliteStore.open(join(root, `other${++n}`, 'keyvalet.db'))
    const otherLog = new AuditLog(other.audit, key, () => 0, INSTANCE)
    await otherLog.append(fields(100))
    await otherLog.append(fields(101))
    const foreign = (await other.audit.read(1, 1))[0]
    await other.close()
    assert.ok(foreign)
    tamper((db) => db.prepare('UPDATE audit SET line = ?, hash = ? WHERE seq = 2').run(foreign.line, foreign.hash))
    const result = await verifyAudit(store.audit, key)
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq], ['chain_broken', 2])
  })

  it('a chain recomputed with plain SHA-256 (no key) fails at seq 1', async () => {
    await writeChain(5)
    tamper((db) => {
      const rows = db.prepare('SELECT seq, line FROM audit ORDER BY seq').all()
      const update = db.prepare('UPDATE audit SET line = ?, hash = ? WHERE seq = ?')
      let prev = GENESIS_PREV
      for (const row of rows) {
        const { hash: _old, ...body } = JSON.parse(String(row.line)) as AuditRecord
        const edited = { ...body, prev, user: 'mallory' }
        const hash = createHash('sha256').update(canonicalJson(edited)).digest('hex')
        update.run(canonicalJson({ ...edited, hash }), hash, Number(row.seq))
        prev = hash
      }
    })
    const result = await verifyAudit(store.audit, key)
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq, result.count], ['hash_mismatch', 1, 0])
  })

  it('the wrong key fails at seq 1', async () => {
    await writeChain(3)
    const result = await verifyAudit(store.audit, randomBytes(32))
    assert.deepEqual(result.ok ? undefined : [result.problem, result.seq], ['hash_mismatch', 1])
  })

  it('pairs open and closing records: what is still open is listed, not a failure', async () => {
    const open1 = await log.append(fields(1, { phase: 'open', status: 200 }))
    const open2 = await log.append(fields(2, { phase: 'open', status: 101 }))
    await log.append(fields(3))
    await log.append(fields(1, { phase: 'close', opened: open1.seq, error: 'shutting_down' }))
    const verdict = await verifyAudit(store.audit, key)
    assert.ok(verdict.ok)
    assert.equal(verdict.count, 4)
    assert.deepEqual(verdict.chains[0]?.open, [{ seq: open2.seq, request_id: 'req_2' }])
  })

  it('a closing record that names no open stream of its request is stream_unmatched', async () => {
    for (const [label, write] of [
      ['names no record', async () => log.append(fields(1, { phase: 'close', opened: 7 }))],
      ['names a whole record', async () => { await log.append(fields(1)); await log.append(fields(1, { phase: 'close', opened: 1 })) }],
      ['names another request', async () => { await log.append(fields(1, { phase: 'open' })); await log.append(fields(2, { phase: 'close', opened: 1 })) }],
      ['closes twice', async () => { await log.append(fields(1, { phase: 'open' })); await log.append(fields(1, { phase: 'close', opened: 1 })); await log.append(fields(1, { phase: 'close', opened: 1 })) }],
    ] as const) {
      store.close()
      path = join(root, `a${++n}`, 'keyvalet.db')
      store = SqliteStore.open(path)
      log = new AuditLog(store.audit, key, () => now++, INSTANCE)
      await write()
      const verdict = await verifyAudit(store.audit, key)
      assert.equal(verdict.ok ? 'ok' : verdict.problem, 'stream_unmatched', label)
    }
  })

  it('a record moved into another instance\'s chain is hash_mismatch, naming that chain', async () => {
    await writeChain(3)
    const other = new AuditLog(store.audit, key, () => now++, 'ins_00000000000000b2')
    await other.append(fields(10))
    await other.append(fields(11))
    tamper((db) => db.exec(`UPDATE audit SET instance = 'ins_00000000000000b2', chain_seq = 3 WHERE instance = '${INSTANCE}' AND chain_seq = 3`))
    const result = await verifyAudit(store.audit, key)
    assert.deepEqual(result.ok ? undefined : [result.instance, result.problem, result.seq], ['ins_00000000000000b2', 'hash_mismatch', 3])
    assert.match(result.ok ? '' : result.message, /instance ins_00000000000000b2: record 3 holds a record written as seq 3 of instance ins_00000000000000a1/)
  })

  it('a log written before per-instance chains (records without an instance) verifies as the chain \'\', beside new chains', async () => {
    let prev = GENESIS_PREV
    const legacy = Array.from({ length: 3 }, (_, i) => {
      const body = { ...fields(i + 1), seq: i + 1, time: new Date(now++).toISOString(), prev }
      const hash = auditHash(key, body)
      prev = hash
      return { instance: '', chainSeq: i + 1, hash, line: canonicalJson({ ...body, hash }) }
    })
    await store.audit.append(legacy)
    await writeChain(2)
    const verdict = await verifyAudit(store.audit, key)
    assert.deepEqual(verdict.ok && verdict.chains.map((c) => [c.instance, c.count]), [['', 3], [INSTANCE, 2]])
    tamper((db) => db.exec(`UPDATE audit SET line = replace(line, '"user":"u"', '"user":"v"') WHERE instance = '' AND chain_seq = 2`))
    const broken = await verifyAudit(store.audit, key)
    assert.deepEqual(broken.ok ? undefined : [broken.instance, broken.seq, broken.problem], ['', 2, 'hash_mismatch'])
  })

  it('after a failed commit the chain goes on from what the store holds', async () => {
    await writeChain(2)
    // Another writer took place 3 of this chain (as a commit whose answer was lost would have).
    const [first, second] = await store.audit.readChain(INSTANCE, 0, 2)
    assert.ok(first && second)
    const stolen = await new AuditLog(store.audit, key, () => now++, INSTANCE).append(fields(3))
    await assert.rejects(log.append(fields(4)), /expected 4, got 3|UNIQUE/)
    const next = await log.append(fields(5))
    assert.deepEqual([next.seq, next.prev], [4, stolen.hash])
    assert.equal((await verifyAudit(store.audit, key)).ok, true)
  })

  it('appendBatch commits its records in order, in one chain with the appends made beside it', async () => {
    const single = log.append(fields(1))
    const batch = log.appendBatch([fields(2), fields(3), fields(4)])
    const later = log.appendBatch([fields(5)])
    const records = [await single, ...(await batch), ...(await later)]
    assert.deepEqual(records.map((r) => [r.seq, r.request_id]), [[1, 'req_1'], [2, 'req_2'], [3, 'req_3'], [4, 'req_4'], [5, 'req_5']])
    assert.deepEqual((await store.audit.read(0, 10)).map((row) => row.chainSeq), [1, 2, 3, 4, 5])
    assert.deepEqual(await verifyAudit(store.audit, key).then((v) => v.ok && v.count), 5)
  })

  it('appendBatch is committed whole or not at all', async () => {
    await writeChain(1)
    // Another writer takes place 2 of this chain: the batch that would go on from 1 fails, none of it stored.
    await new AuditLog(store.audit, key, () => now++, INSTANCE).append(fields(2))
    await assert.rejects(log.appendBatch([fields(3), fields(4), fields(5)]), /expected 2, got 2|expected 3, got 2|UNIQUE/)
    assert.deepEqual((await store.audit.read(0, 10)).map((row) => row.chainSeq), [1, 2])
    const next = await log.appendBatch([fields(6), fields(7)])
    assert.deepEqual(next.map((r) => r.seq), [3, 4])
    assert.equal((await verifyAudit(store.audit, key)).ok, true)
  })

  it('truncating the newest records still verifies, with a smaller count (documented limit)', async () => {
    const records = await writeChain(5)
    tamper((db) => db.exec('DELETE FROM audit WHERE seq > 3'))
    assert.deepEqual(await verifyAudit(store.audit, key), { ok: true, count: 3, chains: [{ instance: INSTANCE, count: 3, lastHash: records[2]?.hash, open: [] }] })
  })
})
