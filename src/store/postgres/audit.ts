import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFacets, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditWindow, NewAuditRow } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** The facet columns beside each line (the migrations that add them: the indexed facets, then mode and phase), in AuditFacets' terms. */
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const
const NO_FACETS: { readonly [Name in keyof AuditFacets]: null } = {
  time: null, session: null, agent: null, user: null, workspace: null, task: null, connector: null, decision: null, error: null, mode: null, phase: null,
}
const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

/** AuditRepo on the `audit` table: each method beside its statement. */
export function postgresAudit(sql: Sql): AuditRepo {
  const chainLast = async (instance: string): Promise<AuditRow | undefined> => {
    const [row] = await sql`SELECT seq, instance, chain_seq, hash, line FROM audit WHERE instance = ${instance} ORDER BY chain_seq DESC LIMIT 1`
    return row === undefined ? undefined : toAuditRow(row)
  }

  return {
    // No lock: an instance appends only to its own chain. The chains' ends are read in the
    // transaction, and the unique index on (instance, chain_seq) refuses a second writer that
    // read the same end (the whole transaction then fails: nothing is half-appended).
    append: (rows: readonly NewAuditRow[]) =>
      sql.begin(async (tx) => {
        if (rows.length === 0) return []
        const ends = new Map<string, number>()
        for (const instance of new Set(rows.map((r) => r.instance))) {
          const [end] = await tx`SELECT chain_seq FROM audit WHERE instance = ${instance} ORDER BY chain_seq DESC LIMIT 1`
          ends.set(instance, end === undefined ? 0 : Number(end.chain_seq))
        }
        for (const row of rows) {
          const end = ends.get(row.instance) ?? 0
          if (row.chainSeq !== end + 1) throw new OperatorError(`audit append out of order: chain ${JSON.stringify(row.instance)} expected ${end + 1}, got ${row.chainSeq}`)
          ends.set(row.instance, row.chainSeq)
        }
        // A row without facets (db copy of a line that is not a record) is found by seq only.
        const columns = rows.map((row) => ({ instance: row.instance, chain_seq: row.chainSeq, hash: row.hash, line: row.line, ...(row.facets ?? NO_FACETS) }))
        const inserted = await tx`INSERT INTO audit ${tx(columns, 'instance', 'chain_seq', 'hash', 'line', ...FACETS)} RETURNING seq, instance, chain_seq`
        // RETURNING's order is not promised: each row is found again by its place in its chain.
        const seqs = new Map(inserted.map((r) => [`${String(r.chain_seq)} ${String(r.instance)}`, Number(r.seq)]))
        return rows.map((row) => {
          const seq = seqs.get(`${row.chainSeq} ${row.instance}`)
          if (seq === undefined) throw new Error('audit append lost a row')
          return { seq, instance: row.instance, chainSeq: row.chainSeq, hash: row.hash, line: row.line }
        })
      }),
    chainLast,
    chains: async () =>
      (await sql`SELECT instance, COUNT(*) AS count, MIN(seq) AS first, MAX(seq) AS last FROM audit GROUP BY instance ORDER BY first`)
        .map((r) => ({ instance: String(r.instance), rows: Number(r.count), lastSeq: Number(r.last) })),
    readChain: async (instance, afterChainSeq, limit) =>
      (await sql`SELECT seq, instance, chain_seq, hash, line FROM audit WHERE instance = ${instance} AND chain_seq > ${afterChainSeq} ORDER BY chain_seq LIMIT ${limit}`).map(toAuditRow),
    read: async (afterSeq: number, limit: number) =>
      (await sql`SELECT seq, instance, chain_seq, hash, line FROM audit WHERE seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`).map(toAuditRow),
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
      return (await sql`SELECT seq, instance, chain_seq, hash, line FROM audit WHERE ${where} ${order} LIMIT ${page.limit}`).map(toAuditRow)
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
      const [row] = await sql`SELECT seq, instance, chain_seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1`
      return row === undefined ? undefined : toAuditRow(row)
    },
  }
}

function toCount(row: Row): AuditCount {
  return { name: String(row.name), count: Number(row.count), refused: Number(row.refused) }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), instance: String(row.instance), chainSeq: Number(row.chain_seq), hash: String(row.hash), line: String(row.line) }
}
