import type { DatabaseSync } from 'node:sqlite'
import { OperatorError } from '../../errors.ts'
import type { AuditRepo, AuditRow } from '../store.ts'
import type { Row } from './fresh-reads.ts'

/** AuditRepo on the audit file's `audit` table: each method beside its statement. */
export function sqliteAudit(db: DatabaseSync): AuditRepo {
  const last = db.prepare('SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1')
  const insert = db.prepare('INSERT INTO audit (seq, hash, line) VALUES (?, ?, ?)')
  const read = db.prepare('SELECT seq, hash, line FROM audit WHERE seq > ? ORDER BY seq LIMIT ?')

  const appendRows = (build: (last: AuditRow | undefined) => AuditRow[]): AuditRow[] => {
    // IMMEDIATE takes the write lock before reading the last row, so a second process waits
    // (busy_timeout) instead of building on the same predecessor and forking the chain.
    db.exec('BEGIN IMMEDIATE')
    try {
      const lastRow = last.get()
      let expected = (lastRow === undefined ? 0 : toAuditRow(lastRow).seq) + 1
      const rows = build(lastRow === undefined ? undefined : toAuditRow(lastRow))
      for (const row of rows) {
        if (row.seq !== expected) throw new OperatorError(`audit append out of order: expected seq ${expected}, got ${row.seq}`)
        insert.run(row.seq, row.hash, row.line)
        expected++
      }
      db.exec('COMMIT')
      return rows.map((row) => ({ seq: row.seq, hash: row.hash, line: row.line }))
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }

  return {
    append: async (build) => {
      const [row] = appendRows((previous) => [build(previous)])
      if (row === undefined) throw new Error('audit append built no row')
      return row
    },
    appendMany: async (build) => appendRows(build),
    read: async (afterSeq: number, limit: number) => read.all(afterSeq, limit).map(toAuditRow),
    last: async () => {
      const row = last.get()
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}
