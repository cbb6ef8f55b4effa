import { OperatorError } from '../../errors.ts'
import type { AuditFacets, AuditFilter, AuditPage, AuditRepo, AuditRow } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** keyvalet's key for pg_advisory_xact_lock around an append ("kvaudit" in ASCII). */
const APPEND_LOCK = 0x6b7661756469740an

/** The facet columns beside each line (MIGRATIONS[2]), in AuditFacets' terms. */
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const
const NO_FACETS: { readonly [Name in keyof AuditFacets]: null } = { time: null, session: null, agent: null, user: null, workspace: null, task: null, connector: null, decision: null, error: null }
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
    last: async () => {
      const [row] = await sql`SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1`
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}
