import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditSummary, AuditWindow } from '../store.ts'
import type { Row } from './fresh-reads.ts'

/** AuditRepo on the audit file's `audit` table: each method beside its statement. */
export function sqliteAudit(db: DatabaseSync): AuditRepo {
  const last = db.prepare('SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1')
  const insert = db.prepare(`INSERT INTO audit (seq, hash, line, ${FACETS.join(', ')}) VALUES (?, ?, ?, ${FACETS.map(() => '?').join(', ')})`)
  const read = db.prepare('SELECT seq, hash, line FROM audit WHERE seq > ? ORDER BY seq LIMIT ?')
  const perMinute = db.prepare(`SELECT substr(time, 1, 16) AS minute, decision, count(*) AS count FROM audit WHERE ${REQUESTS} GROUP BY minute, decision ORDER BY minute, decision`)
  const perError = db.prepare(`SELECT error AS name, count(*) AS count, count(*) AS refused FROM audit WHERE ${REQUESTS} AND ${REFUSED} AND error IS NOT NULL GROUP BY error ORDER BY count DESC, name LIMIT 50`)
  const busiest = (column: 'connector' | 'agent') => db.prepare(`SELECT ${column} AS name, count(*) AS count, sum(CASE WHEN ${REFUSED} THEN 1 ELSE 0 END) AS refused FROM audit WHERE ${REQUESTS} AND ${column} IS NOT NULL GROUP BY ${column} ORDER BY count DESC, name LIMIT ?`)
  const perConnector = busiest('connector')
  const perAgent = busiest('agent')

  // One prepared statement per shape of query (which filters are set, which order): at most a few thousand.
  const queries = new Map<string, StatementSync>()

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
        const f = row.facets
        insert.run(row.seq, row.hash, row.line, ...(f === undefined ? FACETS.map(() => null) : FACETS.map((name) => f[name])))
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
    query: async (filter: AuditFilter, page: AuditPage) => {
      const { sql, params } = querySql(filter, page)
      let statement = queries.get(sql)
      if (statement === undefined) {
        statement = db.prepare(sql)
        queries.set(sql, statement)
      }
      return statement.all(...params).map(toAuditRow)
    },
    summary: async ({ since, until, top }: AuditWindow): Promise<AuditSummary> => {
      // One read transaction: the four counts see the same rows, whatever the writer commits meanwhile.
      db.exec('BEGIN')
      try {
        return {
          minutes: perMinute.all(since, until).map((r) => ({ minute: String(r.minute), decision: String(r.decision), count: Number(r.count) })),
          errors: perError.all(since, until).map(toCount),
          connectors: perConnector.all(since, until, top).map(toCount),
          agents: perAgent.all(since, until, top).map(toCount),
        }
      } finally {
        db.exec('COMMIT')
      }
    },
    last: async () => {
      const row = last.get()
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}

function toCount(row: Row): AuditCount {
  return { name: String(row.name), count: Number(row.count), refused: Number(row.refused) }
}

/** The facet columns (AUDIT_MIGRATIONS[1] and [2]), in AuditFacets' terms. */
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const
/** The rows of requests in [since, until), as AuditRepo.summary counts them (the two bound parameters first). */
const REQUESTS = "time >= ? AND time < ? AND mode IN ('gateway', 'forward') AND (phase IS NULL OR phase <> 'open')"
const REFUSED = "decision IN ('deny', 'error')"
const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

/** The SELECT for one query: a term per filter given, each bound, never spliced into the text. */
function querySql(filter: AuditFilter, page: AuditPage): { sql: string; params: (string | number)[] } {
  const terms: string[] = []
  const params: (string | number)[] = []
  for (const name of EXACT) {
    const value = filter[name]
    if (value === undefined) continue
    terms.push(`${name} = ?`)
    params.push(value)
  }
  if (filter.since !== undefined) {
    terms.push('time >= ?')
    params.push(filter.since)
  }
  if (filter.until !== undefined) {
    terms.push('time < ?')
    params.push(filter.until)
  }
  if (page.after !== undefined) {
    terms.push(page.order === 'asc' ? 'seq > ?' : 'seq < ?')
    params.push(page.after)
  }
  params.push(page.limit)
  const where = terms.length === 0 ? '' : ` WHERE ${terms.join(' AND ')}`
  return { sql: `SELECT seq, hash, line FROM audit${where} ORDER BY seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`, params }
}
