import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFacets, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditWindow } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** keyvalet's key for pg_advisory_xact_lock around an append ("kvaudit" in ASCII). */
const APPEND_LOCK = 0x6b7661756469740an

/** The facet columns beside each line (MIGRATIONS[2] and [5]), in AuditFacets' terms. */
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const
const NO_FACETS: { readonly [Name in keyof AuditFacets]: null } = {
  time: null, session: null, agent: null, user: null, workspace: null, task: null, connector: null, decision: null, error: null, mode: null, phase: null,
}
const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

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
      const built = build(previous)
      for (const row of built) {
        if (row.seq !== expected) throw new OperatorError(`audit append out of order: expected seq ${expected}, got ${row.seq}`)
        expected++
      }
      // A row without facets (db copy of a line that is not a record) is found by seq only.
      const columns = built.map((row) => ({ seq: row.seq, hash: row.hash, line: row.line, ...(row.facets ?? NO_FACETS) }))
      if (columns.length > 0) await tx`INSERT INTO audit ${tx(columns, 'seq', 'hash', 'line', ...FACETS)}`
      return built.map((row) => ({ seq: row.seq, hash: row.hash, line: row.line }))
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
    query: async (filter: AuditFilter, page: AuditPage) => {
      // A term per filter given, each value a parameter; a row without facets matches no term.
      const terms = [sql`TRUE`]
      for (const name of EXACT) {
        const value = filter[name]
        if (value !== undefined) terms.push(sql`${sql(name)} = ${value}`)
      }
      if (filter.since !== undefined) terms.push(sql`time >= ${filter.since}`)
      if (filter.until !== undefined) terms.push(sql`time < ${filter.until}`)
      if (page.after !== undefined) terms.push(page.order === 'asc' ? sql`seq > ${page.after}` : sql`seq < ${page.after}`)
      const where = terms.reduce((all, term) => sql`${all} AND ${term}`)
      const order = page.order === 'asc' ? sql`ORDER BY seq ASC` : sql`ORDER BY seq DESC`
      return (await sql`SELECT seq, hash, line FROM audit WHERE ${where} ${order} LIMIT ${page.limit}`).map(toAuditRow)
    },
    summary: ({ since, until, top }: AuditWindow) =>
      // One snapshot: the four counts see the same rows, whatever other instances append meanwhile.
      sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
        const requests = tx`time >= ${since} AND time < ${until} AND mode IN ('gateway', 'forward') AND (phase IS NULL OR phase <> 'open')`
        const refused = tx`decision IN ('deny', 'error')`
        const minutes = await tx`SELECT substr(time, 1, 16) AS minute, decision, count(*) AS count FROM audit WHERE ${requests}
          GROUP BY minute, decision ORDER BY minute, decision COLLATE "C"`
        const errors = await tx`SELECT error AS name, count(*) AS count, count(*) AS refused FROM audit WHERE ${requests} AND ${refused} AND error IS NOT NULL
          GROUP BY error ORDER BY count DESC, error COLLATE "C" LIMIT 50`
        const busiest = (column: 'connector' | 'agent') => tx`SELECT ${tx(column)} AS name, count(*) AS count, sum(CASE WHEN ${refused} THEN 1 ELSE 0 END) AS refused
          FROM audit WHERE ${requests} AND ${tx(column)} IS NOT NULL GROUP BY ${tx(column)} ORDER BY count DESC, ${tx(column)} COLLATE "C" LIMIT ${top}`
        return {
          minutes: minutes.map((r) => ({ minute: String(r.minute), decision: String(r.decision), count: Number(r.count) })),
          errors: errors.map(toCount),
          connectors: (await busiest('connector')).map(toCount),
          agents: (await busiest('agent')).map(toCount),
        }
      }),
    last: async () => {
      const [row] = await sql`SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1`
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toCount(row: Row): AuditCount {
  return { name: String(row.name), count: Number(row.count), refused: Number(row.refused) }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}
