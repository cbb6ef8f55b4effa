import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditSummary, AuditWindow, NewAuditRow } from '../store.ts'
import { ARREARS, bindTwice, FACETS, FacetArrears, facetRows, INDEXED_UP_TO, type ArrearsOptions } from './audit-facets.ts'
import type { Row } from './fresh-reads.ts'

const COLUMNS = 'seq, instance, chain_seq, hash, line'

/**
 * AuditRepo on the audit file's `audit` table, its facets indexed in arrears on `audit_facets`
 * (audit-facets.ts): each method beside its statement.
 */
export function sqliteAudit(db: DatabaseSync, arrearsOptions: ArrearsOptions = ARREARS): AuditRepo {
  const arrears = new FacetArrears(db, arrearsOptions)
  const last = db.prepare(`SELECT ${COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1`)
  const chainLast = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE instance = ? ORDER BY chain_seq DESC LIMIT 1`)
  const chains = db.prepare('SELECT instance, COUNT(*) AS count, MIN(seq) AS first, MAX(seq) AS last FROM audit GROUP BY instance ORDER BY first')
  const readChain = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE instance = ? AND chain_seq > ? ORDER BY chain_seq LIMIT ?`)
  const insert = db.prepare(`INSERT INTO audit (instance, chain_seq, hash, line, ${FACETS.join(', ')}) VALUES (?, ?, ?, ?, ${FACETS.map(() => '?').join(', ')})`)
  const read = db.prepare(`SELECT ${COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`)
  const perMinute = db.prepare(SUMMARY_SQL.perMinute)
  const perError = db.prepare(SUMMARY_SQL.perError)
  const perConnector = db.prepare(SUMMARY_SQL.perConnector)
  const perAgent = db.prepare(SUMMARY_SQL.perAgent)

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
      arrears.appended(appended.length)
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
      arrears.bound()
      let statement = queries.get(sql)
      if (statement === undefined) {
        statement = db.prepare(sql)
        queries.set(sql, statement)
      }
      return statement.all(...params).map(toAuditRow)
    },
    summary: async ({ since, until, top }: AuditWindow): Promise<AuditSummary> => {
      arrears.bound()
      const window = bindTwice([since, until])
      // One read transaction: the four counts see the same rows, whatever the writer commits meanwhile.
      db.exec('BEGIN')
      try {
        return {
          minutes: perMinute.all(...window).map((r) => ({ minute: String(r.minute), decision: String(r.decision), count: Number(r.count) })),
          errors: perError.all(...window).map(toCount),
          connectors: perConnector.all(...window, top).map(toCount),
          agents: perAgent.all(...window, top).map(toCount),
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

/** The rows of requests in [since, until), as AuditRepo.summary counts them (the two bound parameters first). */
const REQUESTS = "time >= ? AND time < ? AND mode IN ('gateway', 'forward') AND (phase IS NULL OR phase <> 'open')"
const REFUSED = "decision IN ('deny', 'error')"
/** The requests of a window, indexed and tail (audit-facets.ts): the window's two parameters are bound twice (bindTwice). */
const REQUEST_ROWS = facetRows('time, decision, error, connector, agent', REQUESTS)
const busiest = (column: 'connector' | 'agent') => `SELECT ${column} AS name, count(*) AS count, sum(CASE WHEN ${REFUSED} THEN 1 ELSE 0 END) AS refused FROM ${REQUEST_ROWS} WHERE ${column} IS NOT NULL GROUP BY ${column} ORDER BY count DESC, name LIMIT ?`
/** AuditRepo.summary's four counts. */
export const SUMMARY_SQL = {
  perMinute: `SELECT substr(time, 1, 16) AS minute, decision, count(*) AS count FROM ${REQUEST_ROWS} GROUP BY minute, decision ORDER BY minute, decision`,
  perError: `SELECT error AS name, count(*) AS count, count(*) AS refused FROM ${REQUEST_ROWS} WHERE ${REFUSED} AND error IS NOT NULL GROUP BY error ORDER BY count DESC, name LIMIT 50`,
  perConnector: busiest('connector'),
  perAgent: busiest('agent'),
} as const
const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

/**
 * The SELECT for one query: a term per filter given, each bound, never spliced into the text.
 * Without a facet to filter on, `audit` is read by seq alone. With one, the indexed rows (found
 * through audit_facets' index for a facet, joined to `audit` for their lines) and the tail's (by
 * rowid range, audit-facets.ts) are merged in seq order, each half walked in that order, so the
 * LIMIT stops both early.
 */
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
  const order = page.order === 'asc' ? 'ASC' : 'DESC'
  const cursor = page.after === undefined ? [] : [page.order === 'asc' ? 'seq > ?' : 'seq < ?']
  const cursorParams = page.after === undefined ? [] : [page.after]
  if (terms.length === 0) {
    const where = cursor.length === 0 ? '' : ` WHERE ${cursor[0]}`
    return { sql: `SELECT ${COLUMNS} FROM audit${where} ORDER BY seq ${order} LIMIT ?`, params: [...cursorParams, page.limit] }
  }
  const indexed = [...terms, ...cursor].map((term) => `f.${term}`).join(' AND ')
  const tail = [`seq > ${INDEXED_UP_TO}`, ...terms, ...cursor].join(' AND ')
  // f.seq, not a.seq: the planner then sees the facet's index (facet, seq) deliver seq order, no sort.
  const sql = `SELECT f.seq AS seq, a.instance, a.chain_seq, a.hash, a.line FROM audit_facets AS f CROSS JOIN audit AS a ON a.seq = f.seq WHERE ${indexed}` +
    ` UNION ALL SELECT ${COLUMNS} FROM audit WHERE ${tail} ORDER BY seq ${order} LIMIT ?`
  return { sql, params: [...bindTwice([...params, ...cursorParams]), page.limit] }
}
