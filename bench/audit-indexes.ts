/**
 * `node bench/audit-indexes.ts`: what the audit file's facet indexes cost a commit. Two audit
 * files made by the real migrations (SqliteStore), one as is and one without the indexes on agent,
 * user, workspace, task, connector and error (session, time and the chains' unique index kept:
 * what a cheaper schema would keep); the same rows appended through the AuditRepo to each, in
 * batches of AUDIT_BATCH (default 1 and 16), rounds alternating. Reports CPU µs per commit and per
 * record (process CPU, so the kernel's WAL writes count). The numbers are for deciding whether to
 * drop indexes; keyvalet keeps them all.
 */
import { DatabaseSync } from 'node:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { auditPathFor, SqliteStore } from '../src/store/sqlite-store.ts'
import type { NewAuditRow } from '../src/store/store.ts'

const ROWS = Number(process.env.AUDIT_ROWS ?? 20_000)
const BATCHES = (process.env.AUDIT_BATCH ?? '1,16').split(',').map(Number)
const DROPPED = ['audit_by_agent', 'audit_by_user', 'audit_by_workspace', 'audit_by_task', 'audit_by_connector', 'audit_by_error']
const LINE = JSON.stringify({ note: 'x'.repeat(600) })

const dir = mkdtempSync(join(tmpdir(), 'kv-audit-indexes-'))
try {
  for (const batch of BATCHES) {
    const results = new Map<string, number[]>()
    for (let round = 0; round < 4; round++) {
      for (const indexes of ['all nine', 'three kept']) {
        const path = join(dir, `${indexes === 'all nine' ? 'all' : 'kept'}-${batch}-${round}.db`)
        const store = SqliteStore.open(path)
        if (indexes !== 'all nine') {
          const db = new DatabaseSync(auditPathFor(path))
          for (const name of DROPPED) db.exec(`DROP INDEX ${name}`)
          db.close()
        }
        const cpu0 = process.cpuUsage()
        for (let seq = 1; seq <= ROWS; seq += batch) {
          const rows: NewAuditRow[] = []
          for (let i = seq; i < seq + batch && i <= ROWS; i++) {
            rows.push({ instance: 'ins_bench', chainSeq: i, hash: i.toString(16).padStart(64, '0'), line: LINE, facets: { time: new Date().toISOString(), session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'ws', task: 'task-1', connector: 'demo', decision: 'allow', error: null, mode: 'gateway', phase: null } })
          }
          await store.audit.append(rows)
        }
        const cpu = process.cpuUsage(cpu0)
        results.set(indexes, [...(results.get(indexes) ?? []), (cpu.user + cpu.system) / ROWS])
        await store.close()
      }
    }
    for (const [indexes, perRecord] of results) {
      const best = Math.min(...perRecord)
      console.log(`batches of ${batch}, ${indexes}: ${best.toFixed(1)} µs CPU per record (${(best * batch).toFixed(1)} per commit), best of ${perRecord.length} rounds`)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
