import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { DatabaseSync } from 'node:sqlite'
import { auditPathFor, SqliteStore } from '../store/sqlite-store.ts'
import { AuditWriter } from './audit-writer.ts'
import type { AuditFields } from './record.ts'
import { verifyAudit } from './verify.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-writer-'))
after(() => rmSync(root, { recursive: true, force: true }))

const fields = (i: number): AuditFields => ({
  request_id: `req_${i}`, mode: 'gateway', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
  method: 'GET', path: '/x', query_keys: [], decision: 'deny', reason: 'task_key_missing', rule: null, credential: null,
  status: 401, upstream_status: null, error: 'task_key_missing', bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 1,
})

describe('AuditWriter: where the engine runs', () => {
  it('on this thread for SQLite without fsync, on the audit thread with fsync', async () => {
    const cheap = await AuditWriter.start({ store: { kind: 'sqlite', path: join(root, 'm1.db'), fsync: false }, key: randomBytes(32), reserveBytes: 65536 })
    const durable = await AuditWriter.start({ store: { kind: 'sqlite', path: join(root, 'm2.db'), fsync: true }, key: randomBytes(32), reserveBytes: 65536 })
    assert.deepEqual([cheap.threaded, durable.threaded], [false, true])
    assert.deepEqual([await cheap.append(fields(1)), await durable.append(fields(1))], [1, 1])
    await Promise.all([cheap.close(), durable.close()])
  })

  it("on this thread, waits for another connection's write lock without stopping the event loop", async () => {
    const path = join(root, 'm3.db')
    const writer = await AuditWriter.start({ store: { kind: 'sqlite', path, fsync: false }, key: randomBytes(32), reserveBytes: 65536 })
    const lock = new DatabaseSync(auditPathFor(path))
    lock.exec('BEGIN IMMEDIATE')
    let ticks = 0
    const ticker = setInterval(() => ticks++, 5)
    try {
      let committed: number | undefined
      const append = writer.append(fields(1)).then((seq) => { committed = seq })
      await new Promise((r) => setTimeout(r, 300))
      assert.equal(committed, undefined, 'not committed while another connection holds the lock')
      assert.ok(ticks >= 10, `timers kept firing while it waited (${ticks} ticks of 5 ms in 300 ms)`)
      lock.exec('ROLLBACK')
      await append
      assert.equal(committed, 1)
    } finally {
      clearInterval(ticker)
      if (lock.isTransaction) lock.exec('ROLLBACK')
      lock.close()
      await writer.close()
    }
  })
})

for (const thread of [false, true]) describe(`AuditWriter (${thread ? 'on the audit thread' : 'on the proxy thread'})`, () => {
  it('commits concurrent appends as one verifiable chain, visible to other connections when they resolve', async () => {
    const path = join(root, `a${thread}.db`)
    const key = randomBytes(32)
    const reader = SqliteStore.open(path)
    const writer = await AuditWriter.start({ store: { kind: 'sqlite', path, fsync: false }, key, reserveBytes: 65536, thread })
    const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => writer.append(fields(i))))
    assert.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => i + 1))
    assert.equal((await reader.audit.last())?.seq, 50)
    const one = await writer.append(fields(50))
    assert.equal((await reader.audit.last())?.seq, one, 'committed before append resolved')
    await writer.close()
    const verdict = await verifyAudit(reader.audit, key)
    assert.ok(verdict.ok && verdict.count === 51)
    await reader.close()
  })

  it('fails every append once the engine is gone, so requests fail closed', async () => {
    const writer = await AuditWriter.start({ store: { kind: 'sqlite', path: join(root, `b${thread}.db`), fsync: true }, key: randomBytes(32), reserveBytes: 65536, thread })
    assert.equal(await writer.append(fields(1)), 1)
    assert.equal(writer.admit(), true)
    await writer.terminate()
    await assert.rejects(writer.append(fields(2)), /audit writer (exited|terminated)/)
    assert.equal(writer.admit(), false, 'nothing is admitted once the thread is gone')
    assert.equal(writer.available, false)
  })

  it('closes admission when its reserve goes missing, makes it again, and records the outage with the exact count of refusals', async () => {
    const path = join(root, `d${thread}.db`)
    const key = randomBytes(32)
    const writer = await AuditWriter.start({ store: { kind: 'sqlite', path, fsync: false }, key, reserveBytes: 65536, thread })
    let refused = 0
    try {
      assert.equal(writer.available, true)
      const reserve = `${auditPathFor(path)}.reserve`
      assert.equal(statSync(reserve).size, 65536)
      unlinkSync(reserve)
      for (let i = 0; i < 5000 && refused === 0; i++) {
        if (!writer.admit()) refused++
        else await new Promise((r) => setTimeout(r, 1))
      }
      assert.equal(refused, 1, 'admission closed once the reserve was gone')
      for (let i = 0; i < 5000 && !writer.admit(); i++) {
        refused++
        await new Promise((r) => setTimeout(r, 1))
      }
      assert.equal(writer.available, true, 'admission reopened by itself')
      assert.equal(statSync(reserve).size, 65536, 'the reserve was made again')
    } finally {
      await writer.close()
    }
    const store = SqliteStore.open(path)
    try {
      const rows = await store.audit.read(0, 10)
      assert.equal(rows.length, 1)
      const record = JSON.parse(rows[0]?.line ?? '{}') as AuditFields
      assert.deepEqual([record.mode, record.error, record.status], ['keyvalet', 'audit_unavailable', 503])
      assert.deepEqual([record.detail?.cause, record.detail?.refused, record.detail?.lost], ['disk_space_low', refused, 0])
      assert.ok((await verifyAudit(store.audit, key)).ok)
    } finally {
      await store.close()
    }
  })

  it('takes no new request while it cannot hold its reserve, but still writes the records it is sent', async () => {
    const writer = await AuditWriter.start({ store: { kind: 'sqlite', path: join(root, `c${thread}.db`), fsync: false }, key: randomBytes(32), reserveBytes: Number.MAX_SAFE_INTEGER - 1, thread })
    try {
      assert.equal(writer.available, false)
      assert.equal(writer.admit(), false)
      assert.equal(await writer.append(fields(1)), 1)
    } finally {
      await writer.close()
    }
  })
})
