import { OperatorError } from '../../errors.ts'
import type { AuditCount, AuditFacets, AuditFilter, AuditPage, AuditRepo, AuditRow, AuditWindow, NewAuditRow } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** The facet columns beside each line (the migrations that add them: the indexed facets, then mode and phase), in AuditFacets' terms. */
const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const
/** keyvalet's one-key advisory lock that orders audit commits ("kvaudseq" in ASCII; apart from the migration lock and the two-key locks of locks.ts). */
const AUDIT_ORDER_LOCK = '7743483766134498673'
const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

/** AuditRepo on the `audit` table: each method beside its statement. */
export function postgresAudit(sql: Sql): AuditRepo {
  const chainLast = async (instance: string): Promise<AuditRow | undefined> => {
    const [row] = await sql`SELECT seq, instance, chain_seq, hash, line FROM audit WHERE instance = ${instance} ORDER BY chain_seq DESC LIMIT 1`
    return row === undefined ? undefined : toAuditRow(row)
  }

  return {
    // One statement, so one round trip and its own transaction (each request waits for its
    // record's commit: a BEGIN, a read of the chain's end and a COMMIT more were the largest cost
    // of a request on PostgreSQL). The batch goes in only if each chain's first row in it follows
    // a row the table has (or is the chain's first); the unique index on (instance, chain_seq)
    // refuses a second writer at the same place. Either refusal leaves nothing of the batch.
    //
    // Rows are numbered (seq) in commit order: the statement takes AUDIT_ORDER_LOCK before any row
    // is numbered and holds it to its commit, so no row can commit below a seq a reader has
    // already seen, and every reader going by seq (GET /v1/audit, the live stream, replay,
    // suggest) sees each row exactly once. Appends of the fleet take turns for that moment only
    // (the insert and its commit): each instance still batches whatever came meanwhile.
    append: async (rows: readonly NewAuditRow[]) => {
      if (rows.length === 0) return []
      checkConsecutive(rows)
      // The batch is one JSON parameter: one prepared statement whatever its size, and cheaper to
      // send than 15 parameters a row. A row without facets (db copy of a line that is not a
      // record) gets none: it is found by seq only.
      const batch = JSON.stringify(rows.map((row) => ({ ...row.facets, instance: row.instance, chain_seq: row.chainSeq, hash: row.hash, line: row.line })))
      const inserted = await sql`WITH turn AS (SELECT pg_advisory_xact_lock(${AUDIT_ORDER_LOCK}::bigint)),
        batch AS (SELECT * FROM json_to_recordset(${batch}::text::json) AS b(instance text, chain_seq bigint, hash text, line text,
          time text, session text, agent text, "user" text, workspace text, task text, connector text, decision text, error text, mode text, phase text))
        INSERT INTO audit (instance, chain_seq, hash, line, ${sql(FACETS)})
        SELECT instance, chain_seq, hash, line, ${sql(FACETS)} FROM turn CROSS JOIN batch WHERE NOT EXISTS (
          SELECT 1 FROM batch f WHERE f.chain_seq > 1
            AND NOT EXISTS (SELECT 1 FROM batch p WHERE p.instance = f.instance AND p.chain_seq = f.chain_seq - 1)
            AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.instance = f.instance AND a.chain_seq = f.chain_seq - 1))
        RETURNING seq, instance, chain_seq`
      if (inserted.length === 0) {
        const chains = [...new Set(rows.map((row) => JSON.stringify(row.instance)))].join(', ')
        throw new OperatorError(`audit append out of order: the batch does not continue the end of its chain (${chains}) in the store`)
      }
      // RETURNING's order is not promised: each row is found again by its place in its chain.
      const seqs = new Map(inserted.map((r) => [`${String(r.chain_seq)} ${String(r.instance)}`, Number(r.seq)]))
      return rows.map((row) => {
        const seq = seqs.get(`${row.chainSeq} ${row.instance}`)
        if (seq === undefined) throw new Error('audit append lost a row')
        return { seq, instance: row.instance, chainSeq: row.chainSeq, hash: row.hash, line: row.line }
      })
    },
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

/** Within a batch, each chain's rows follow each other (the statement checks only where each chain's rows begin). */
function checkConsecutive(rows: readonly NewAuditRow[]): void {
  const last = new Map<string, number>()
  for (const row of rows) {
    const before = last.get(row.instance)
    if (!Number.isSafeInteger(row.chainSeq) || row.chainSeq < 1 || (before !== undefined && row.chainSeq !== before + 1)) {
      throw new OperatorError(`audit append out of order: chain ${JSON.stringify(row.instance)} expected ${before === undefined ? 'a place from 1' : before + 1}, got ${row.chainSeq}`)
    }
    last.set(row.instance, row.chainSeq)
  }
}

function toCount(row: Row): AuditCount {
  return { name: String(row.name), count: Number(row.count), refused: Number(row.refused) }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), instance: String(row.instance), chainSeq: Number(row.chain_seq), hash: String(row.hash), line: String(row.line) }
}
