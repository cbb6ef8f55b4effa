/**
 * `node bench/audit-stalls.ts`: how long single audit commits stall the thread that makes them,
 * with SQLite's automatic WAL checkpoint (every 1,000 pages, inside whichever commit crosses it)
 * and with checkpoints on their own thread (src/store/sqlite/checkpointer.ts, what keyvalet does).
 * Real audit files made by the real migrations; AUDIT_ROWS rows (default 20,000) appended one per
 * commit, as a paced load of single requests does; the two settings alternate over rounds. Reports each setting's wall time per commit: p50, p99, p99.9,
 * max, and how many commits took over 2 ms. The thread that commits is the proxy's own under
 * `audit.thread: auto` with SQLite, so a stall here is added latency for every request waiting.
 */
import { DatabaseSync } from 'node:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabaseFile } from '../src/store/sqlite-file.ts'
import { AUDIT_MIGRATIONS } from '../src/store/sqlite/migrations.ts'
import { sqliteAudit } from '../src/store/sqlite/audit.ts'
import { Checkpointer } from '../src/store/sqlite/checkpointer.ts'
import type { NewAuditRow } from '../src/store/store.ts'

const ROWS = Number(process.env.AUDIT_ROWS ?? 20_000)
const ROUNDS = Number(process.env.AUDIT_ROUNDS ?? 3)
const LINE = JSON.stringify({ note: 'x'.repeat(900) })

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

// Started as under load, at the first watch (keyvalet's watches every second).
const checkpointer = new Checkpointer({ watchEveryMs: 50 })
const dir = mkdtempSync(join(tmpdir(), 'kv-audit-stalls-'))
try {
  const results = new Map<string, number[]>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const setting of ['checkpoint in the commit (SQLite default)', 'checkpoint thread']) {
      const path = join(dir, `r${round}-${setting === 'checkpoint thread' ? 'thread' : 'inline'}.db`)
      // The audit file's connection as SqliteStore opens it (WAL, synchronous=NORMAL, the real migrations).
      const db: DatabaseSync = openDatabaseFile(path, false, AUDIT_MIGRATIONS)
      const release = setting === 'checkpoint thread' ? checkpointer.register(db) : () => undefined
      const audit = sqliteAudit(db)
      const walls: number[] = []
      for (let seq = 1; seq <= ROWS; seq++) {
        const row: NewAuditRow = { instance: 'ins_bench', chainSeq: seq, hash: seq.toString(16).padStart(64, '0'), line: LINE, facets: { time: new Date().toISOString(), session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'ws', task: 'task-1', connector: 'demo', decision: 'allow', error: null, mode: 'gateway', phase: null } }
        const t0 = process.hrtime.bigint()
        await audit.append([row])
        walls.push(Number(process.hrtime.bigint() - t0) / 1e6)
        // The event loop turns between commits, as it does between a proxy's requests (timers run).
        await new Promise(setImmediate)
      }
      results.set(setting, [...(results.get(setting) ?? []), ...walls])
      release()
      db.close()
    }
  }
  for (const [setting, walls] of results) {
    const sorted = walls.toSorted((a, b) => a - b)
    const over = walls.filter((w) => w > 2).length
    console.log(`${setting}${checkpointer.problems.length > 0 ? ` (${checkpointer.problems.join('; ')})` : ''}: per commit p50 ${quantile(sorted, 0.5).toFixed(3)} ms, p99 ${quantile(sorted, 0.99).toFixed(3)}, p99.9 ${quantile(sorted, 0.999).toFixed(3)}, max ${sorted.at(-1)!.toFixed(1)} ms; ${over} of ${walls.length} over 2 ms`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
