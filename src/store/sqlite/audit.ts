import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditSummary, AuditWindow, NewAuditRow } from '../store.ts'
import type { Row } from './fresh-reads.ts'

const COLUMNS = 'seq, instance, chain_seq, hash, line'

/** AuditRepo on the audit file's `audit` table: each method beside its statement. */
export function sqliteAudit(db: DatabaseSync): AuditRepo {
  const last = db.prepare(`SELECT ${COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1`)
  const chainLast = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE instance = ? ORDER BY chain_seq DESC LIMIT 1`)
  const chains = db.prepare('SELECT instance, COUNT(*) AS count, MIN(seq) AS first, MAX(seq) AS last FROM audit GROUP BY instance ORDER BY first')
  const readChain = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE instance = ? AND chain_seq > ? ORDER BY chain_seq LIMIT ?`)
  const insert = db.prepare(`INSERT INTO audit (instance, chain_seq, hash, line, ${FACETS.join(', ')}) VALUES (?, ?, ?, ?, ${FACETS.map(() => '?').join(', ')})`)
  const read = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`)
  const perMinute = db.prepare(`SELECT substr(time, 1, 16) AS minute, decision, count(*) AS count FROM audit WHERE ${REQUESTS} GROUP BY minute, decision ORDER BY minute, decision`)
  const perError = db.prepare(`SELECT error AS name, count(*) AS count, count(*) AS refused FROM audit WHERE ${REQUESTS} AND ${REFUSED} AND error IS NOT NULL GROUP BY error ORDER BY count DESC, name LIMIT 50`)
  const busiest = (column: 'connector' | 'agent') => db.prepare(`SELECT ${column} AS name, count(*) AS count, sum(CASE WHEN ${REFUSED} THEN 1 ELSE 0 END) AS refused FROM audit WHERE ${REQUESTS} AND ${column} IS NOT NULL GROUP BY ${column} ORDER BY count DESC, name LIMIT ?`)
  const perConnector = busiest('connector')
  const perAgent = busiest('agent')

  // One prepared statement per shape of query (which filters are set, which order): at most a few thousand.
  const queries = new Map<string, StatementSync>()

  const appendRows = (rows: readonly NewAuditRow[]): AuditRow[] => {
    // IMMEDIATE takes the file's write lock before the chains' ends are read (SQLite has one
    // writer at a time anyway: another process waits, busy_timeout).
    db.exec('BEGIN IMMEDIATE')
    try {
      const ends = new Map<string, number>()
      const appended = rows.map((row) => {
        const end = ends.get(row.instance) ?? Number((chainLast.get(row.instance) as Row | undefined)?.chain_seq ?? 0)
        if (row.chainSeq !== end + 1) throw new OperatorError(`audit append out of order: chain ${JSON.stringify(row.instance)} expected ${end + 1}, got ${row.chainSeq}`)
        ends.set(row.instance, row.chainSeq)
        const f = row.facets
        const { lastInsertRowid } = insert.run(row.instance, row.chainSeq, row.hash, row.line, ...(f === undefined ? FACETS.map(() => null) : FACETS.map((name) => f[name])))
        return { seq: Number(lastInsertRowid), instance: row.instance, chainSeq: row.chainSeq, hash: row.hash, line: row.line }
      })
      db.exec('COMMIT')
      return appended
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }

  return {
    append: async (rows) => appendRows(rows),
    chainLast: async (instance) => {
      const row = chainLast.get(instance)
      return row === undefined ? undefined : toAuditRow(row)
    },
    chains: async () => chains.all().map((r) => ({ instance: String(r.instance), rows: Number(r.count), lastSeq: Number(r.last) })),
    readChain: async (instance, afterChainSeq, limit) => readChain.all(instance, afterChainSeq, limit).map(toAuditRow),
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
  return { seq: Number(row.seq), instance: String(row.instance), chainSeq: Number(row.chain_seq), hash: String(row.hash), line: String(row.line) }
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
export function querySql(filter: AuditFilter, page: AuditPage): { sql: string; params: (string | number)[] } {
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
  return { sql: `SELECT ${COLUMNS} FROM audit${where} ORDER BY seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`, params }
}
