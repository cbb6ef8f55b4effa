import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { startTestPostgres, type TestPostgres } from '../../test/helpers/postgres.ts'
import type { StoreLocation } from '../store/location.ts'
import { openStore } from '../store/open.ts'
import { connect } from '../store/postgres/connect.ts'
import { auditPathFor } from '../store/sqlite-store.ts'
import { AuditWriter } from './audit-writer.ts'
import { INSTANCE_ID } from './instance.ts'
import type { AuditFields } from './record.ts'
import { verifyAudit } from './verify.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-chains-'))
after(() => rmSync(root, { recursive: true, force: true }))

const fields = (i: number): AuditFields => ({
  request_id: `req_${i}`, mode: 'gateway', session: 'ses_1', agent: 'bot', user: 'u', workspace: 'w', task: 't', connector: 'github',
  method: 'GET', path: `/x/${i}`, query_keys: [], decision: 'allow', reason: 'rule_matched', rule: 'r', credential: null,
  status: 200, upstream_status: 200, error: null, bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 1,
})

/**
 * Two audit writers (two keyvalet instances, each its thread and connection) append to one store
 * at once; every record lands in its writer's own chain, both verify; then one record of the
 * second chain is altered behind keyvalet's back and verify names that instance and record.
 */
async function twoInstances(location: StoreLocation, alter: (instance: string, chainSeq: number) => Promise<void>): Promise<void> {
  const key = randomBytes(32)
  const writers = await Promise.all([1, 2].map(() => AuditWriter.start({ store: location, key, reserveBytes: 65536 })))
  const [a, b] = writers as [AuditWriter, AuditWriter]
  assert.match(a.instance, INSTANCE_ID)
  assert.notEqual(a.instance, b.instance)
  const store = await openStore(location)
  try {
    // Interleaved: each writer's batches commit while the other's are in flight.
    const appends: Promise<number>[] = []
    for (let i = 0; i < 150; i++) appends.push(a.append(fields(i)), b.append(fields(1000 + i)))
    const seqs = await Promise.all(appends)
    assert.deepEqual(seqs.filter((_, i) => i % 2 === 0), Array.from({ length: 150 }, (_, i) => i + 1), 'each resolved with its place in its own chain')
    await Promise.all(writers.map((w) => w.close()))
    const verdict = await verifyAudit(store.audit, key, { pageSize: 40 })
    assert.ok(verdict.ok, JSON.stringify(verdict))
    assert.deepEqual(verdict.chains.map((c) => [c.instance, c.count]).sort(), [[a.instance, 150], [b.instance, 150]].sort())
    const rows = await store.audit.read(0, 1000)
    assert.equal(rows.length, 300)
    assert.ok(rows.every((r) => (JSON.parse(r.line) as { instance: string }).instance === r.instance))

    await alter(b.instance, 77)
    const broken = await verifyAudit(store.audit, key, { pageSize: 40 })
    assert.deepEqual(broken.ok ? undefined : [broken.instance, broken.seq, broken.problem], [b.instance, 77, 'hash_mismatch'])
    assert.match(broken.ok ? '' : broken.message, new RegExp(`instance ${b.instance}: record 77 was altered`))
  } finally {
    await Promise.all(writers.map((w) => w.close().catch(() => {})))
    await store.close()
  }
}

describe('per-instance audit chains', () => {
  it('SQLite: two instances writing at once each keep their own chain; verify passes, then names the altered record', async () => {
    const path = join(root, 'kv', 'keyvalet.db')
    await twoInstances({ kind: 'sqlite', path, fsync: false }, async (instance, chainSeq) => {
      const db = new DatabaseSync(auditPathFor(path))
      db.exec('DROP TRIGGER audit_no_update')
      db.prepare(`UPDATE audit SET line = replace(line, '"user":"u"', '"user":"x"') WHERE instance = ? AND chain_seq = ?`).run(instance, chainSeq)
      db.close()
    })
  })

  describe('PostgreSQL', () => {
    let server: TestPostgres
    before(async () => {
      server = await startTestPostgres()
    })
    after(() => server.stop())

    it('two instances writing at once each keep their own chain; verify passes, then names the altered record', async () => {
      const location = await server.database()
      await twoInstances(location, async (instance, chainSeq) => {
        const sql = connect(location, { max: 1 })
        try {
          await sql.begin(async (tx) => {
            await tx`ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete`
            await tx`UPDATE audit SET line = replace(line, '"user":"u"', '"user":"x"') WHERE instance = ${instance} AND chain_seq = ${chainSeq}`
            await tx`ALTER TABLE audit ENABLE TRIGGER audit_no_update_or_delete`
          })
        } finally {
          await sql.end()
        }
      })
    })
  })
})
