/**
 * `node bench/audit-insert.ts`: ways of inserting a batch of audit rows into the audit file (made
 * by the real migrations, SqliteStore), each a transaction as the AuditRepo's append is: one
 * INSERT run per row (what src/store/sqlite/audit.ts does), one multi-row `INSERT … VALUES (…),
 * (…)` per batch (prepared per batch size; RETURNING seq, or seqs counted back from the last
 * rowid), and the same with an 8 MiB page cache. Batches of AUDIT_BATCH rows (default 1,4,16),
 * AUDIT_ROWS rows per round (default 8000), 5 rounds alternating, the first dropped. Reports this
 * thread's CPU µs per row (the commit's WAL writes included).
 *
 * Measured (2 loaded cores), when the eight facet indexes were still on `audit`: the multi-row forms
 * cost as much or more than a run per row (batches of 16: 15.6 per row vs 17.7 and 19.8), the page
 * cache changes nothing, and the indexes were most of a commit (batches of 1: 74 vs 27 µs without
 * them). They are now indexed in arrears: bench/audit-arrears.ts measures what that saves.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { auditPathFor, SqliteStore } from '../src/store/sqlite-store.ts'
import type { NewAuditRow } from '../src/store/store.ts'

const ROWS = Number(process.env.AUDIT_ROWS ?? 8000)
const BATCHES = (process.env.AUDIT_BATCH ?? '1,4,16').split(',').map(Number)
const LINE = JSON.stringify({ note: 'x'.repeat(600) })
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const
const COLUMNS = `(instance, chain_seq, hash, line, ${FACETS.join(', ')})`
const ONE = `(?, ?, ?, ?, ${FACETS.map(() => '?').join(', ')})`

type Append = (rows: NewAuditRow[]) => void

function params(rows: NewAuditRow[]): (string | number | null)[] {
  const out: (string | number | null)[] = []
  for (const r of rows) out.push(r.instance, r.chainSeq, r.hash, r.line, ...FACETS.map((name) => r.facets?.[name] ?? null))
  return out
}

function perRow(db: DatabaseSync): Append {
  const insert = db.prepare(`INSERT INTO audit ${COLUMNS} VALUES ${ONE}`)
  const end = db.prepare('SELECT chain_seq FROM audit WHERE instance = ? ORDER BY chain_seq DESC LIMIT 1')
  return (rows) => {
    db.exec('BEGIN IMMEDIATE')
    end.get(rows[0]?.instance ?? '')
    for (const row of rows) insert.run(...params([row]))
    db.exec('COMMIT')
  }
}

function multiRow(db: DatabaseSync, returning: boolean): Append {
  const statements = new Map<number, StatementSync>()
  const end = db.prepare('SELECT chain_seq FROM audit WHERE instance = ? ORDER BY chain_seq DESC LIMIT 1')
  return (rows) => {
    let insert = statements.get(rows.length)
    if (insert === undefined) statements.set(rows.length, (insert = db.prepare(`INSERT INTO audit ${COLUMNS} VALUES ${Array(rows.length).fill(ONE).join(', ')}${returning ? ' RETURNING seq' : ''}`)))
    db.exec('BEGIN IMMEDIATE')
    end.get(rows[0]?.instance ?? '')
    if (returning) insert.all(...params(rows))
    else insert.run(...params(rows))
    db.exec('COMMIT')
  }
}

const WAYS: Record<string, (db: DatabaseSync) => Append> = {
  'one INSERT per row': perRow,
  'multi-row, RETURNING seq': (db) => multiRow(db, true),
  'multi-row, seqs from the last rowid': (db) => multiRow(db, false),
  'one per row, 8 MiB page cache': (db) => { db.exec('PRAGMA cache_size = -8192'); return perRow(db) },
}

const dir = mkdtempSync(join(tmpdir(), 'kv-audit-insert-'))
try {
  for (const batch of BATCHES) {
    const results = new Map<string, number[]>()
    const names = Object.keys(WAYS)
    for (let round = 0; round < 5; round++) {
      for (const name of round % 2 === 0 ? names : [...names].reverse()) {
        const path = join(dir, `${round}-${batch}-${names.indexOf(name)}.db`)
        await SqliteStore.open(path).close()
        const db = new DatabaseSync(auditPathFor(path))
        db.exec('PRAGMA synchronous = NORMAL')
        const append = (WAYS[name] as (db: DatabaseSync) => Append)(db)
        const cpu0 = process.threadCpuUsage()
        for (let seq = 1; seq <= ROWS; seq += batch) {
          const rows: NewAuditRow[] = []
          for (let i = seq; i < seq + batch && i <= ROWS; i++) {
            rows.push({ instance: 'ins_bench', chainSeq: i, hash: i.toString(16).padStart(64, '0'), line: LINE, facets: { time: new Date().toISOString(), session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'ws', task: 'task-1', connector: 'demo', decision: 'allow', error: null, mode: 'gateway', phase: null } })
          }
          append(rows)
        }
        const cpu = process.threadCpuUsage(cpu0)
        if (round > 0) results.set(name, [...(results.get(name) ?? []), (cpu.user + cpu.system) / ROWS])
        db.close()
      }
    }
    for (const name of names) {
      const sorted = [...(results.get(name) ?? [])].sort((a, b) => a - b)
      console.log(`batches of ${batch}, ${name}: ${(sorted[0] as number).toFixed(1)} best / ${(sorted[Math.floor(sorted.length / 2)] as number).toFixed(1)} median µs CPU per row`)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
