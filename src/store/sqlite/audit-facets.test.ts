import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, describe, it } from 'node:test'
import { openDatabaseFile } from '../sqlite-file.ts'
import { auditPathFor, SqliteStore } from '../sqlite-store.ts'
import type { AuditFacets, AuditFilter, AuditRepo, NewAuditRow } from '../store.ts'
import { FacetArrears, type ArrearsOptions } from './audit-facets.ts'
import { sqliteAudit } from './audit.ts'
import { AUDIT_MIGRATIONS } from './migrations.ts'

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-arrears-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const auditFile = () => join(dir, `${++files}-audit.db`)

/** No catch-up unless a test asks for one (or a read finds the tail past `tailBound`). */
const NEVER: ArrearsOptions = { batchRows: 64, everyRows: 1e9, withinMs: 1e9, tailBound: 1e9 }

const AGENTS = ['bot', 'other', 'third']
const DECISIONS = ['allow', 'deny', 'error', 'would_deny']
const MODES = ['gateway', 'forward', 'admin', 'keyvalet']

/** Row i's facets: every facet varies, some are null, now and then a row has none. */
function facetsOf(i: number): AuditFacets | undefined {
  if (i % 17 === 0) return undefined
  const decision = DECISIONS[i % 4] as string
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    session: i % 5 === 0 ? null : `ses_${i % 3}`,
    agent: i % 7 === 0 ? null : (AGENTS[i % 3] as string),
    user: `user_${i % 2}`,
    workspace: 'acme',
    task: i % 2 === 0 ? 't1' : null,
    connector: i % 3 === 0 ? 'crm' : 'github',
    decision,
    error: decision === 'deny' ? 'policy_denied' : decision === 'error' ? 'upstream_timeout' : null,
    mode: MODES[i % 4] as string,
    phase: i % 11 === 0 ? 'open' : null,
  }
}

function rowOf(i: number): NewAuditRow {
  const facets = facetsOf(i)
  return { instance: 'ins_a', chainSeq: i, hash: `h${i}`, line: JSON.stringify({ n: i }), ...(facets === undefined ? {} : { facets }) }
}

async function appendRows(audit: AuditRepo, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) await audit.append([rowOf(i)])
}

const FILTERS: AuditFilter[] = [
  {},
  { agent: 'bot' },
  { agent: 'other', decision: 'deny' },
  { session: 'ses_1' },
  { user: 'user_0', workspace: 'acme', task: 't1' },
  { connector: 'crm' },
  { error: 'policy_denied' },
  { decision: 'error' },
  { since: '2026-01-01T00:00:10.000Z', until: '2026-01-01T00:01:40.000Z' },
  { agent: 'third', since: '2026-01-01T00:00:30.000Z' },
]

/** Every filter's answer, both orders, paged by a cursor; and a summary of the whole window. */
async function answers(audit: AuditRepo): Promise<unknown> {
  const out: unknown[] = []
  for (const filter of FILTERS) {
    for (const order of ['asc', 'desc'] as const) {
      const first = await audit.query(filter, { order, limit: 7 })
      const next = first.length === 0 ? [] : await audit.query(filter, { order, limit: 1000, after: first[first.length - 1]?.seq })
      out.push([...first, ...next].map((r) => r.seq))
    }
  }
  out.push(await audit.summary({ since: '2026-01-01T00:00:00.000Z', until: '2026-01-02T00:00:00.000Z', top: 3 }))
  return out
}

/** The same answers read off the rows' facets in plain JavaScript: what one indexed table would answer. */
function expected(rows: number): unknown {
  const out: unknown[] = []
  const matches = (i: number, f: AuditFilter) => {
    const facets = facetsOf(i)
    if (facets === undefined) return Object.keys(f).length === 0
    for (const [name, value] of Object.entries(f)) {
      if (name === 'since' ? facets.time < value : name === 'until' ? facets.time >= value : facets[name as keyof AuditFacets] !== value) return false
    }
    return true
  }
  const all = Array.from({ length: rows }, (_, i) => i + 1)
  for (const filter of FILTERS) {
    const seqs = all.filter((i) => matches(i, filter))
    out.push(seqs, [...seqs].reverse())
  }
  return out
}

function count(db: DatabaseSync, table: 'audit' | 'audit_facets'): number {
  return Number(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()?.n)
}

describe('SQLite audit facets indexed in arrears', () => {
  it('a query sees a record committed a moment ago, before any catch-up; after catch-up the same answers, summary included', async () => {
    const db = openDatabaseFile(auditFile(), false, AUDIT_MIGRATIONS)
    const audit = sqliteAudit(db, NEVER)
    await appendRows(audit, 1, 150)
    assert.equal(count(db, 'audit_facets'), 0, 'nothing indexed yet: every row is in the tail')
    const [justNow] = await audit.query({ agent: 'third' }, { order: 'desc', limit: 1 })
    assert.equal(justNow?.seq, 149, 'the newest row of that agent, read from the tail')
    const before = await answers(audit)
    assert.deepEqual((before as unknown[]).slice(0, -1), expected(150))
    const arrears = new FacetArrears(db, NEVER)
    while ((arrears.catchUp() ?? 0) > 0);
    assert.equal(count(db, 'audit_facets'), 150)
    assert.equal(arrears.tail(), 0)
    assert.deepEqual(await answers(audit), before, 'the indexed rows answer as the tail did')
    // Half indexed, half in the tail: the merge of the two halves answers the same too.
    await appendRows(audit, 151, 300)
    const mixed = await answers(audit)
    assert.deepEqual((mixed as unknown[]).slice(0, -1), expected(300))
    while ((arrears.catchUp() ?? 0) > 0);
    assert.deepEqual(await answers(audit), mixed)
    db.close()
  })

  it('a catch-up copies each row once: rerun, or after a catch-up cut short by a crash, it neither loses nor duplicates a row', async () => {
    const path = auditFile()
    const db = openDatabaseFile(path, false, AUDIT_MIGRATIONS)
    const audit = sqliteAudit(db, NEVER)
    await appendRows(audit, 1, 100)
    const arrears = new FacetArrears(db, { ...NEVER, batchRows: 40 })
    assert.deepEqual([arrears.catchUp(), arrears.catchUp()], [40, 40])
    // A catch-up by another process dies with its transaction open: SQLite rolls it back.
    const crashed = new DatabaseSync(path)
    crashed.exec('BEGIN IMMEDIATE')
    crashed.exec('INSERT INTO audit_facets (seq, agent) SELECT seq, agent FROM audit WHERE seq > 80')
    crashed.close()
    assert.deepEqual([arrears.catchUp(), arrears.catchUp(), arrears.catchUp()], [20, 0, 0])
    const copied = db.prepare('SELECT seq, time, session, agent, user, workspace, task, connector, decision, error, mode, phase FROM audit_facets ORDER BY seq').all()
    const source = db.prepare('SELECT seq, time, session, agent, user, workspace, task, connector, decision, error, mode, phase FROM audit ORDER BY seq').all()
    assert.deepEqual(copied, source, 'every row once, its facets as committed')
    assert.throws(() => db.exec("UPDATE audit_facets SET agent = 'x' WHERE seq = 1"), /append-only/)
    assert.throws(() => db.exec('DELETE FROM audit_facets WHERE seq = 1'), /append-only/)
    db.close()
  })

  it('a catch-up never waits for another connection\'s write lock: it is put off, and the reads stay exact', async () => {
    const path = auditFile()
    const db = openDatabaseFile(path, false, AUDIT_MIGRATIONS)
    const audit = sqliteAudit(db, { ...NEVER, tailBound: 10 })
    await appendRows(audit, 1, 50)
    const other = new DatabaseSync(path)
    other.exec('BEGIN IMMEDIATE')
    const started = performance.now()
    assert.equal(new FacetArrears(db, NEVER).catchUp(), undefined)
    const rows = await audit.query({ agent: 'bot' }, { order: 'asc', limit: 100 })
    assert.ok(performance.now() - started < 1000, 'no busy wait (busy_timeout is 5 s)')
    assert.deepEqual(rows.map((r) => r.seq), (expected(50) as number[][])[2])
    other.exec('ROLLBACK')
    other.close()
    assert.equal(Number(db.prepare('PRAGMA busy_timeout').get()?.timeout), 5000, 'the connection\'s own busy timeout is back')
    db.close()
  })

  it('a read that finds the tail longer than its bound catches up first; one within the bound does not', async () => {
    const db = openDatabaseFile(auditFile(), false, AUDIT_MIGRATIONS)
    const audit = sqliteAudit(db, { ...NEVER, batchRows: 32, tailBound: 100 })
    await appendRows(audit, 1, 100)
    assert.deepEqual((await audit.query({ agent: 'bot' }, { order: 'asc', limit: 1000 })).map((r) => r.seq), (expected(100) as number[][])[2])
    assert.equal(count(db, 'audit_facets'), 0, 'a tail of 100 is within the bound')
    await appendRows(audit, 101, 250)
    assert.deepEqual((await audit.query({ agent: 'bot' }, { order: 'asc', limit: 1000 })).map((r) => r.seq), (expected(250) as number[][])[2])
    const tail = new FacetArrears(db, NEVER).tail()
    assert.ok(tail <= 100 && tail > 100 - 32, `caught up in batches until the tail is within its bound (${tail})`)
    await appendRows(audit, 251, 400)
    await audit.summary({ since: '2026-01-01T00:00:00.000Z', until: '2026-01-02T00:00:00.000Z', top: 3 })
    assert.ok(new FacetArrears(db, NEVER).tail() <= 100, 'a summary bounds it too')
    await appendRows(audit, 401, 550)
    const readOnly = new DatabaseSync(db.location() ?? '', { readOnly: true })
    const reader = sqliteAudit(readOnly, { ...NEVER, tailBound: 100 })
    assert.deepEqual((await reader.query({ agent: 'bot' }, { order: 'asc', limit: 1000 })).map((r) => r.seq), (expected(550) as number[][])[2], 'a read-only connection cannot catch up: it reads the longer tail')
    readOnly.close()
    db.close()
  })

  it('the writer catches up by itself: in the turn after `everyRows` of its commits, or `withinMs` after the first', async () => {
    const db = openDatabaseFile(auditFile(), false, AUDIT_MIGRATIONS)
    const audit = sqliteAudit(db, { batchRows: 16, everyRows: 40, withinMs: 1e9, tailBound: 1e9 })
    await appendRows(audit, 1, 39)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(count(db, 'audit_facets'), 0, 'not due yet')
    await appendRows(audit, 40, 40)
    assert.equal(count(db, 'audit_facets'), 0, 'not inside the commit the response waits for')
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
    assert.equal(count(db, 'audit_facets'), 40, 'in batches of 16, a turn apart')
    db.close()
    const quiet = openDatabaseFile(auditFile(), false, AUDIT_MIGRATIONS)
    const few = sqliteAudit(quiet, { batchRows: 16, everyRows: 1e9, withinMs: 50, tailBound: 1e9 })
    const started = performance.now()
    await appendRows(few, 1, 5)
    if (performance.now() - started < 40) assert.equal(count(quiet, 'audit_facets'), 0, 'not yet')
    await new Promise((resolve) => setTimeout(resolve, 150))
    assert.equal(count(quiet, 'audit_facets'), 5, 'a few rows, caught up 50 ms after the first')
    quiet.close()
  })

  it('several writers on one file: each catches up all rows, and together they copy each once', async () => {
    const path = auditFile()
    const [a, b] = [openDatabaseFile(path, false, AUDIT_MIGRATIONS), openDatabaseFile(path, false, AUDIT_MIGRATIONS)] as [DatabaseSync, DatabaseSync]
    const options = { batchRows: 8, everyRows: 10, withinMs: 20, tailBound: 1e9 }
    const [auditA, auditB] = [sqliteAudit(a, options), sqliteAudit(b, options)]
    for (let i = 1; i <= 60; i++) await (i % 2 === 0 ? auditA : auditB).append([{ ...rowOf(i), instance: i % 2 === 0 ? 'ins_a' : 'ins_b', chainSeq: Math.ceil(i / 2) }])
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(count(a, 'audit_facets'), 60)
    assert.deepEqual((await auditB.query({ agent: 'bot' }, { order: 'asc', limit: 100 })).map((r) => r.seq), (expected(60) as number[][])[2])
    a.close()
    b.close()
  })

  it('two processes appending to one file at once, each catching up as it goes: no row is ever left out below the watermark', async () => {
    const path = join(dir, `${++files}.db`)
    await SqliteStore.open(path).close()
    const child = (instance: string) => new Promise<number>((resolve, reject) => {
      const script = `
        import { SqliteStore } from ${JSON.stringify(new URL('../sqlite-store.ts', import.meta.url).pathname)}
        const store = SqliteStore.open(${JSON.stringify(path)}, { auditYieldsWhenBusy: true })
        for (let i = 1; i <= 1500; i++) {
          await store.audit.append([{ instance: ${JSON.stringify(instance)}, chainSeq: i, hash: 'h' + i, line: '{}', facets: { time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), session: null, agent: ${JSON.stringify(instance)}, user: null, workspace: null, task: null, connector: null, decision: 'allow', error: null, mode: 'gateway', phase: null } }])
        }
        await new Promise((resolve) => setImmediate(resolve))
        await store.close()`
      const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] })
      const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000)
      proc.on('error', reject)
      proc.on('exit', (code) => { clearTimeout(timer); resolve(code ?? -1) })
    })
    assert.deepEqual(await Promise.all([child('ins_x'), child('ins_y')]), [0, 0])
    const db = new DatabaseSync(auditPathFor(path))
    const watermark = Number(db.prepare('SELECT ifnull(max(seq), 0) AS seq FROM audit_facets').get()?.seq)
    assert.ok(watermark > 0, 'they caught up as they went')
    const missing = db.prepare('SELECT count(*) AS n FROM audit AS a LEFT JOIN audit_facets AS f ON f.seq = a.seq WHERE a.seq <= ? AND f.seq IS NULL').get(watermark)?.n
    assert.equal(Number(missing), 0, 'every row up to the watermark is indexed')
    const arrears = new FacetArrears(db, NEVER)
    while ((arrears.catchUp() ?? 0) > 0);
    const columns = 'seq, time, agent, decision, mode'
    assert.deepEqual(db.prepare(`SELECT ${columns} FROM audit_facets ORDER BY seq`).all(), db.prepare(`SELECT ${columns} FROM audit ORDER BY seq`).all())
    assert.equal(count(db, 'audit_facets'), 3000)
    db.close()
  })

  it('an audit file made by the previous migrations, with rows in it, migrates and answers the same queries', async () => {
    const path = join(dir, `${++files}.db`)
    const old = new DatabaseSync(auditPathFor(path))
    for (const migration of AUDIT_MIGRATIONS.slice(0, 4)) old.exec(migration)
    old.exec('PRAGMA user_version = 4')
    // The previous schema's store, as it was: rows with their facet columns on `audit`, indexed there.
    const insert = old.prepare('INSERT INTO audit (instance, chain_seq, hash, line, time, session, agent, user, workspace, task, connector, decision, error, mode, phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
    for (let i = 1; i <= 300; i++) {
      const r = rowOf(i)
      const f = r.facets
      insert.run(r.instance, r.chainSeq, r.hash, r.line, ...(['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const).map((name) => f?.[name] ?? null))
    }
    const oldAnswers = old.prepare("SELECT seq FROM audit WHERE agent = 'bot' AND time >= '2026-01-01T00:01:00.000Z' ORDER BY seq DESC").all().map((r) => Number(r.seq))
    const oldSummary = old.prepare("SELECT decision, count(*) AS n FROM audit WHERE mode IN ('gateway', 'forward') AND (phase IS NULL OR phase <> 'open') GROUP BY decision ORDER BY decision").all()
    old.close()

    const store = SqliteStore.open(path)
    const raw = new DatabaseSync(auditPathFor(path), { readOnly: true })
    assert.equal(count(raw, 'audit_facets'), 300, 'every row\'s facets copied by the migration')
    const indexes = raw.prepare("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => `${String(r.tbl_name)}.${String(r.name)}`)
    assert.deepEqual(indexes, ['audit.audit_by_chain', ...['agent', 'connector', 'error', 'session', 'task', 'time', 'user', 'workspace'].map((f) => `audit_facets.audit_facets_by_${f}`)])
    raw.close()
    assert.deepEqual((await store.audit.query({ agent: 'bot', since: '2026-01-01T00:01:00.000Z' }, { order: 'desc', limit: 1000 })).map((r) => r.seq), oldAnswers)
    assert.deepEqual(await answers(store.audit).then((a) => (a as unknown[]).slice(0, -1)), expected(300))
    const summary = await store.audit.summary({ since: '2026-01-01T00:00:00.000Z', until: '2026-01-02T00:00:00.000Z', top: 3 })
    const perDecision = new Map<string, number>()
    for (const m of summary.minutes) perDecision.set(m.decision, (perDecision.get(m.decision) ?? 0) + m.count)
    assert.deepEqual([...perDecision].sort(), oldSummary.map((r) => [String(r.decision), Number(r.n)]))
    await store.close()
  })
})
