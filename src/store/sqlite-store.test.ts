import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, describe, it } from 'node:test'
import { Worker } from 'node:worker_threads'
import { storeContract } from '../../test/contract/store.contract.ts'
import { OperatorError } from '../errors.ts'
import { CROSS_PROCESS_STALENESS_MS } from './sqlite/fresh-reads.ts'
import { auditPathFor, SCHEMA_VERSION, SqliteStore } from './sqlite-store.ts'
import { AUDIT_MIGRATIONS } from './sqlite/migrations.ts'
import type { AuditRow, NewAuditRow } from './store.ts'

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let counter = 0
const tmpFile = () => join(dir, `db-${++counter}`, 'keyvalet.db')

storeContract('SqliteStore', async () => SqliteStore.open(tmpFile()))

/** The next row of `instance`'s chain after `last` (its line names its predecessor's hash). */
function nextRow(last: AuditRow | undefined, instance = 'ins_a', tag = ''): NewAuditRow {
  const chainSeq = (last?.chainSeq ?? 0) + 1
  return { instance, chainSeq, hash: `h${instance}${chainSeq}`, line: JSON.stringify({ seq: chainSeq, prev: last?.hash ?? null, tag }) }
}

/** Appends the next row of `instance`'s chain, after reading its end. */
async function appendNext(store: SqliteStore, instance = 'ins_a'): Promise<AuditRow | undefined> {
  const [row] = await store.audit.append([nextRow(await store.audit.chainLast(instance), instance)])
  return row
}

/** Checks `instance`'s chain runs 1..n, each row linking to its predecessor. */
async function assertUnbrokenChain(store: SqliteStore, instance: string, n: number): Promise<void> {
  const rows = await store.audit.readChain(instance, 0, n + 10)
  assert.equal(rows.length, n)
  rows.forEach((row, i) => {
    assert.equal(row.chainSeq, i + 1)
    assert.equal((JSON.parse(row.line) as { prev: string | null }).prev, i === 0 ? null : `h${instance}${i}`)
  })
}

describe('SqliteStore specifics', () => {
  it('creates the parent directory with mode 0700', () => {
    const path = tmpFile()
    const store = SqliteStore.open(path)
    assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700)
    void store.close()
  })

  it('keeps data across reopen', async () => {
    const path = tmpFile()
    const a = SqliteStore.open(path)
    await a.secrets.put({ name: 's', envelope: Buffer.from([1, 2]), keyId: 'k', createdAt: 1, updatedAt: 1 })
    await appendNext(a)
    await a.close()
    const b = SqliteStore.open(path)
    assert.deepEqual((await b.secrets.get('s'))?.envelope, Buffer.from([1, 2]))
    assert.equal((await b.audit.last())?.seq, 1)
    await b.close()
  })

  it('raises on UPDATE and DELETE of audit rows', async () => {
    const path = tmpFile()
    const store = SqliteStore.open(path)
    await appendNext(store)
    const raw = new DatabaseSync(auditPathFor(path))
    assert.throws(() => raw.exec("UPDATE audit SET line = '{}' WHERE seq = 1"), /append-only/)
    assert.throws(() => raw.exec('DELETE FROM audit WHERE seq = 1'), /append-only/)
    raw.close()
    assert.equal((await store.audit.read(0, 10)).length, 1)
    await store.close()
  })

  it('an audit file written before the query columns and chains gets them filled from its lines, and stays append-only', async () => {
    const path = tmpFile()
    await SqliteStore.open(path).close()
    // Rebuilt as the first schema made it, with records in it.
    const old = new DatabaseSync(auditPathFor(path))
    old.exec('DROP TABLE audit')
    old.exec('DROP TABLE audit_facets')
    old.exec(AUDIT_MIGRATIONS[0] as string)
    old.exec('PRAGMA user_version = 1')
    const record = (seq: number, agent: string | null, decision: string, mode = 'gateway') => JSON.stringify({ seq, time: `2026-01-01T00:00:0${seq}.000Z`, mode, agent, session: 'ses_x', user: 'u', workspace: 'w', task: 't', connector: 'c', decision, error: decision === 'deny' ? 'policy_denied' : null })
    const insert = old.prepare('INSERT INTO audit (seq, hash, line) VALUES (?, ?, ?)')
    insert.run(1, 'h1', record(1, 'bot', 'allow'))
    insert.run(2, 'h2', record(2, 'other', 'deny'))
    insert.run(3, 'h3', 'not json')
    insert.run(4, 'h4', record(4, null, 'allow', 'admin'))
    old.close()
    const store = SqliteStore.open(path)
    const summary = await store.audit.summary({ since: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:01:00.000Z', top: 5 })
    assert.deepEqual(summary.minutes, [{ minute: '2026-01-01T00:00', decision: 'allow', count: 1 }, { minute: '2026-01-01T00:00', decision: 'deny', count: 1 }], 'the requests, not the admin call')
    assert.deepEqual((await store.audit.query({ agent: 'other' }, { order: 'asc', limit: 10 })).map((r) => r.seq), [2])
    assert.deepEqual((await store.audit.query({ error: 'policy_denied', since: '2026-01-01T00:00:02.000Z' }, { order: 'asc', limit: 10 })).map((r) => r.seq), [2])
    assert.deepEqual((await store.audit.read(0, 3)).map((r) => r.line.slice(0, 8)), [record(1, 'bot', 'allow').slice(0, 8), record(2, 'other', 'deny').slice(0, 8), 'not json'])
    // They are the chain '' (from before per-instance chains), each at its old place in it.
    assert.deepEqual((await store.audit.readChain('', 0, 10)).map((r) => [r.seq, r.instance, r.chainSeq]), [[1, '', 1], [2, '', 2], [3, '', 3], [4, '', 4]])
    assert.deepEqual(await store.audit.chains(), [{ instance: '', rows: 4, lastSeq: 4 }])
    const [next] = await store.audit.append([{ instance: 'ins_a', chainSeq: 1, hash: 'x', line: '{}' }])
    assert.equal(next?.seq, 5)
    const raw = new DatabaseSync(auditPathFor(path))
    assert.throws(() => raw.exec("UPDATE audit SET agent = 'x' WHERE seq = 1"), /append-only/)
    raw.close()
    await store.close()
  })

  it('refuses a database with a newer schema version', async () => {
    const path = tmpFile()
    await SqliteStore.open(path).close()
    const raw = new DatabaseSync(path)
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`)
    raw.close()
    assert.throws(
      () => SqliteStore.open(path),
      (err: unknown) => err instanceof OperatorError && /newer/.test(err.message) && err.hint !== undefined,
    )
  })

  it('creates the database and its WAL files readable by the owner only', async () => {
    const path = tmpFile()
    const store = SqliteStore.open(path)
    await store.sessions.list()
    const audit = auditPathFor(path)
    for (const file of [path, `${path}-wal`, `${path}-shm`, audit, `${audit}-wal`, `${audit}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, file)
    await store.close()
  })

  it('creates a new database without leaving a temporary file beside it', async () => {
    const path = tmpFile()
    await SqliteStore.open(path).close()
    assert.deepEqual(readdirSync(join(path, '..')).sort(), ['keyvalet-audit.db', 'keyvalet.db'])
  })

  it('a second store opened in this process (as the audit writer thread does) leaves the first its locks: an outside reader does not delete the live -wal', async () => {
    const path = tmpFile()
    const first = SqliteStore.open(path)
    await appendNext(first)
    const second = SqliteStore.open(path)
    for (const file of [path, auditPathFor(path)]) {
      execFileSync('sqlite3', [file, 'select count(*) from sqlite_schema'])
      assert.ok(existsSync(`${file}-wal`), `${file}-wal`)
    }
    await second.close()
    await appendNext(first)
    const outside = new DatabaseSync(auditPathFor(path), { readOnly: true })
    assert.equal(outside.prepare('SELECT count(*) AS n FROM audit').get()?.n, 2, 'a new reader sees every commit')
    outside.close()
    await first.close()
  })

  it('puts the database in WAL mode', async () => {
    const path = tmpFile()
    const store = SqliteStore.open(path)
    const raw = new DatabaseSync(path)
    assert.equal(raw.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal')
    raw.close()
    await store.close()
  })

  it('never serves a stale session or secret: changes by its own connection show at once, by another within CROSS_PROCESS_STALENESS_MS', async () => {
    const later = () => new Promise((r) => setTimeout(r, CROSS_PROCESS_STALENESS_MS + 1))
    const path = tmpFile()
    const a = SqliteStore.open(path)
    const b = SqliteStore.open(path)
    const keyHash = Buffer.alloc(32, 7)
    await a.sessions.insert({ id: 'ses_cache', keyHash, agent: 'x', user: 'u', workspace: 'w', task: 't', grants: [], createdAt: 1, expiresAt: 2, revokedAt: undefined })
    assert.equal((await a.sessions.findByKeyHash(keyHash))?.revokedAt, undefined)
    assert.equal((await a.sessions.findByKeyHash(keyHash))?.revokedAt, undefined, 'a second read, from the cache')
    await b.sessions.revoke('ses_cache', 5)
    await later()
    assert.equal((await a.sessions.findByKeyHash(keyHash))?.revokedAt, 5, 'revoked by another connection')
    await a.secrets.put({ name: 'tok', envelope: Buffer.from('one'), keyId: 'k', createdAt: 1, updatedAt: 1 })
    assert.equal((await a.secrets.get('tok'))?.envelope.toString(), 'one')
    await b.secrets.put({ name: 'tok', envelope: Buffer.from('two'), keyId: 'k', createdAt: 1, updatedAt: 2 })
    await later()
    assert.equal((await a.secrets.get('tok'))?.envelope.toString(), 'two', 'replaced by another connection')
    await a.secrets.put({ name: 'tok', envelope: Buffer.from('three'), keyId: 'k', createdAt: 1, updatedAt: 3 })
    assert.equal((await a.secrets.get('tok'))?.envelope.toString(), 'three', 'replaced by this connection')
    await b.secrets.delete('tok')
    await later()
    assert.equal(await a.secrets.get('tok'), undefined, 'deleted by another connection')
    await a.close()
    await b.close()
  })

  it('two connections on one file, appending alternately, each to its own chain: both unbroken, every row numbered once', async () => {
    const path = tmpFile()
    const a = SqliteStore.open(path)
    const b = SqliteStore.open(path)
    const chains = { ins_a: a, ins_b: b }
    for (let i = 0; i < 100; i++) for (const [instance, store] of Object.entries(chains)) await appendNext(store, instance)
    await assertUnbrokenChain(a, 'ins_a', 100)
    await assertUnbrokenChain(a, 'ins_b', 100)
    assert.equal(new Set((await a.audit.read(0, 300)).map((r) => r.seq)).size, 200)
    await a.close()
    await b.close()
  })

  it('two threads on one file, appending in parallel, each to its own chain: both unbroken', async () => {
    const path = tmpFile()
    const main = SqliteStore.open(path)
    const moduleUrl = new URL('./sqlite-store.ts', import.meta.url).href
    // Each worker is a separate connection running truly in parallel with the other.
    const code = `
      const { workerData, parentPort } = require('node:worker_threads')
      import(workerData.moduleUrl).then(async ({ SqliteStore }) => {
        const store = SqliteStore.open(workerData.path)
        const instance = workerData.instance
        let last
        for (let i = 0; i < workerData.count; i++) {
          const chainSeq = (last?.chainSeq ?? 0) + 1
          ;[last] = await store.audit.append([{ instance, chainSeq, hash: 'h' + instance + chainSeq, line: JSON.stringify({ seq: chainSeq, prev: last?.hash ?? null }) }])
        }
        await store.close()
        parentPort.postMessage('done')
      })
    `
    const run = (instance: string) =>
      new Promise<void>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { moduleUrl, path, count: 100, instance } })
        w.on('message', () => resolve())
        w.on('error', reject)
        w.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`worker exited ${c}`))))
      })
    await Promise.all([run('ins_x'), run('ins_y')])
    await assertUnbrokenChain(main, 'ins_x', 100)
    await assertUnbrokenChain(main, 'ins_y', 100)
    await main.close()
  })
})
