/**
 * `node bench/audit-arrears.ts`: what indexing the audit file's facets in arrears saves a commit
 * (src/store/sqlite/audit-facets.ts). The same rows are appended, one transaction per batch of
 * AUDIT_BATCH rows (default 1,4,16,64), as the AuditRepo's append does (chain end read, one INSERT
 * per row), to:
 * - `all indexes`: an audit file of the previous schema (AUDIT_MIGRATIONS up to [3]: the eight facet
 *   indexes on `audit`, updated by every commit);
 * - `arrears, catch-up N`: today's file (only audit_by_chain on `audit`), with FacetArrears'
 *   catch-up of up to N rows run after every N rows appended, its CPU counted with the commits';
 * - `no facet indexes`: today's file with no catch-up at all (the floor: what the commit alone costs).
 * AUDIT_ROWS rows per round (default 8000), 5 rounds with the ways interleaved (order reversed every
 * other round), the first dropped. Reports this thread's CPU µs per row (the kernel's WAL writes
 * included) best / median, and for each catch-up size how long one catch-up holds the file's write
 * lock (wall time from BEGIN IMMEDIATE to COMMIT), median / p99 / max over every catch-up measured.
 * synchronous=NORMAL, as `audit.fsync` off; with it on, every commit (a catch-up's too) adds a flush.
 * The WAL is checkpointed (PASSIVE) every CHECKPOINT_ROWS rows, its CPU counted, outside any
 * catch-up's hold, as the checkpoint thread does (sqlite/checkpointer.ts): otherwise the commit that
 * takes the WAL past 1,000 pages carries the checkpoint, and a hold would measure that.
 */
import { DatabaseSync } from 'node:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabaseFile } from '../src/store/sqlite-file.ts'
import { FACETS, FacetArrears } from '../src/store/sqlite/audit-facets.ts'
import { AUDIT_MIGRATIONS } from '../src/store/sqlite/migrations.ts'

const ROWS = Number(process.env.AUDIT_ROWS ?? 8000)
const BATCHES = (process.env.AUDIT_BATCH ?? '1,4,16,64').split(',').map(Number)
const CATCH_UPS = (process.env.AUDIT_CATCH_UP ?? '256,1024').split(',').map(Number)
const LINE = JSON.stringify({ note: 'x'.repeat(600) })
const ROUNDS = 5
const CHECKPOINT_ROWS = 1000

interface Way {
  readonly migrations: readonly string[]
  /** Rows per catch-up; none when undefined. */
  readonly catchUp?: number
}

const WAYS: Record<string, Way> = {
  'all indexes (before)': { migrations: AUDIT_MIGRATIONS.slice(0, 4) },
  ...Object.fromEntries(CATCH_UPS.map((n) => [`arrears, catch-up ${n}`, { migrations: AUDIT_MIGRATIONS, catchUp: n }])),
  'no facet indexes, no catch-up': { migrations: AUDIT_MIGRATIONS },
}

function facets(): (string | null)[] {
  const f: Record<(typeof FACETS)[number], string | null> = { time: new Date().toISOString(), session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'ws', task: 'task-1', connector: 'demo', decision: 'allow', error: null, mode: 'gateway', phase: null }
  return FACETS.map((name) => f[name])
}

/** One round of one way: CPU µs per row, and each catch-up's hold of the write lock in ms. */
function round(path: string, way: Way, batch: number): { cpuPerRow: number; holds: number[] } {
  const db = openDatabaseFile(path, false, way.migrations)
  const insert = db.prepare(`INSERT INTO audit (instance, chain_seq, hash, line, ${FACETS.join(', ')}) VALUES (?, ?, ?, ?, ${FACETS.map(() => '?').join(', ')})`)
  const end = db.prepare('SELECT chain_seq FROM audit WHERE instance = ? ORDER BY chain_seq DESC LIMIT 1')
  const arrears = way.catchUp === undefined ? undefined : new FacetArrears(db, { batchRows: way.catchUp, everyRows: way.catchUp, withinMs: 1e9, tailBound: 1e9 })
  db.exec('PRAGMA wal_autocheckpoint = 0')
  const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
  const holds: number[] = []
  let owed = 0
  const cpu0 = process.threadCpuUsage()
  for (let seq = 1; seq <= ROWS; seq += batch) {
    db.exec('BEGIN IMMEDIATE')
    end.get('ins_bench')
    for (let i = seq; i < seq + batch && i <= ROWS; i++) insert.run('ins_bench', i, i.toString(16).padStart(64, '0'), LINE, ...facets())
    db.exec('COMMIT')
    owed += Math.min(batch, ROWS - seq + 1)
    if (arrears !== undefined && way.catchUp !== undefined && (owed >= way.catchUp || seq + batch > ROWS)) {
      const started = performance.now()
      arrears.catchUp()
      holds.push(performance.now() - started)
      owed = 0
    }
    if (Math.floor((seq + batch - 1) / CHECKPOINT_ROWS) !== Math.floor((seq - 1) / CHECKPOINT_ROWS)) checkpoint.get()
  }
  const cpu = process.threadCpuUsage(cpu0)
  if (arrears !== undefined && arrears.tail() !== 0) throw new Error('the catch-up fell behind')
  db.close()
  return { cpuPerRow: (cpu.user + cpu.system) / ROWS, holds }
}

const at = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] as number
const dir = mkdtempSync(join(tmpdir(), 'kv-audit-arrears-'))
try {
  const holds = new Map<string, number[]>()
  for (const batch of BATCHES) {
    const results = new Map<string, number[]>()
    const names = Object.keys(WAYS)
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of r % 2 === 0 ? names : [...names].reverse()) {
        const result = round(join(dir, `${r}-${batch}-${names.indexOf(name)}-audit.db`), WAYS[name] as Way, batch)
        if (r === 0) continue
        results.set(name, [...(results.get(name) ?? []), result.cpuPerRow])
        holds.set(name, [...(holds.get(name) ?? []), ...result.holds])
      }
    }
    for (const name of names) {
      const sorted = [...(results.get(name) ?? [])].sort((a, b) => a - b)
      console.log(`batches of ${batch}, ${name}: ${(sorted[0] as number).toFixed(1)} best / ${at(sorted, 0.5).toFixed(1)} median µs CPU per row`)
    }
  }
  for (const [name, all] of holds) {
    if (all.length === 0) continue
    const sorted = [...all].sort((a, b) => a - b)
    console.log(`${name}: one catch-up holds the write lock ${at(sorted, 0.5).toFixed(2)} median / ${at(sorted, 0.99).toFixed(2)} p99 / ${(sorted[sorted.length - 1] as number).toFixed(2)} max ms (${sorted.length} catch-ups)`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
