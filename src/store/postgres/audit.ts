import { OperatorError } from '../../errors.ts'
import type { AuditRepo, AuditRow } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** keyvalet's key for pg_advisory_xact_lock around an append ("kvaudit" in ASCII). */
const APPEND_LOCK = 0x6b7661756469740an

/** AuditRepo on the `audit` table: each method beside its statement. */
export function postgresAudit(sql: Sql): AuditRepo {
  const appendRows = (build: (last: AuditRow | undefined) => AuditRow[]): Promise<AuditRow[]> =>
    sql.begin(async (tx) => {
      // The lock makes appenders (other instances, the CLI) take turns, so none builds on a
      // predecessor another is replacing; an advisory lock needs no privilege beyond INSERT.
      await tx`SELECT pg_advisory_xact_lock(${APPEND_LOCK.toString()}::bigint)`
      const [lastRow] = await tx`SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1`
      const previous = lastRow === undefined ? undefined : toAuditRow(lastRow)
      let expected = (previous?.seq ?? 0) + 1
      const rows = build(previous).map((row) => ({ seq: row.seq, hash: row.hash, line: row.line }))
      for (const row of rows) {
        if (row.seq !== expected) throw new OperatorError(`audit append out of order: expected seq ${expected}, got ${row.seq}`)
        expected++
      }
      if (rows.length > 0) await tx`INSERT INTO audit ${tx(rows, 'seq', 'hash', 'line')}`
      return rows
    })

  return {
    append: async (build) => {
      const [row] = await appendRows((previous) => [build(previous)])
      if (row === undefined) throw new Error('audit append built no row')
      return row
    },
    appendMany: (build) => appendRows(build),
    read: async (afterSeq: number, limit: number) =>
      (await sql`SELECT seq, hash, line FROM audit WHERE seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`).map(toAuditRow),
    last: async () => {
      const [row] = await sql`SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1`
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}
