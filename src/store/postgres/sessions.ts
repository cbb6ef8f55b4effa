import type { Session, SessionFilter, StoredSession } from '../../model/session.ts'
import { grantsColumn, sessionFromRow } from '../session-row.ts'
import type { SessionCursor, SessionRepo } from '../store.ts'
import type { Row, Sql } from './connect.ts'
import type { NotifiedReads } from './notified-reads.ts'

/**
 * SessionRepo on the `sessions` table: each method beside its statement. A lookup by key hash is
 * kept in `reads` until its session changes; this instance's own writes remove it at once (the
 * notification of the change arrives a moment later).
 */
export function postgresSessions(sql: Sql, reads: NotifiedReads): SessionRepo {
  return {
    insert: async (s: StoredSession) => {
      const grants = grantsColumn(s.grants)
      await sql`INSERT INTO sessions (id, key_hash, agent, "user", workspace, task, grants, created_at, expires_at, revoked_at, budget)
        VALUES (${s.id}, ${s.keyHash}, ${s.agent}, ${s.user}, ${s.workspace}, ${s.task}, ${grants}, ${s.createdAt}, ${s.expiresAt}, ${s.revokedAt ?? null}, ${s.budget ?? null})`
    },
    findByKeyHash: (keyHash: Buffer) =>
      reads.read(`s${keyHash.toString('hex')}`, (s: StoredSession) => `session:${s.id}`, async () => {
        const [row] = await sql`SELECT * FROM sessions WHERE key_hash = ${keyHash}`
        return row === undefined ? undefined : toStoredSession(row)
      }),
    get: async (id: string) => {
      const [row] = await sql`SELECT * FROM sessions WHERE id = ${id}`
      return row === undefined ? undefined : toSession(row)
    },
    list: async () => (await sql`SELECT * FROM sessions ORDER BY created_at, id COLLATE "C"`).map(toSession),
    listStored: async () => (await sql`SELECT * FROM sessions ORDER BY created_at, id COLLATE "C"`).map(toStoredSession),
    revoke: async (id: string, at: number) => {
      const result = await sql`UPDATE sessions SET revoked_at = COALESCE(revoked_at, ${at}) WHERE id = ${id}`
      reads.changed(`session:${id}`)
      return result.count > 0
    },
    // Ids compare byte by byte (COLLATE "C"), as in SQLite and the sessions_by_creation index.
    page: async (filter: SessionFilter, after: SessionCursor | undefined, limit: number) => {
      const from = after?.createdAt ?? Number.MIN_SAFE_INTEGER
      const rows = await sql`SELECT * FROM sessions WHERE ${matches(sql, filter)}
        AND (created_at, id COLLATE "C") > (${from}::bigint, ${after?.id ?? ''}::text COLLATE "C")
        ORDER BY created_at, id COLLATE "C" LIMIT ${limit}`
      return rows.map(toSession)
    },
    revokeMatching: async (filter: SessionFilter, at: number) => {
      if (Object.values(fields(filter)).every((v) => v === null)) throw new Error('revokeMatching needs a filter with at least one field')
      const rows = await sql`UPDATE sessions SET revoked_at = ${at} WHERE ${matches(sql, filter)} AND revoked_at IS NULL RETURNING id`
      const ids = rows.map((row) => String(row.id))
      for (const id of ids) reads.changed(`session:${id}`)
      return ids
    },
  }
}

function fields(f: SessionFilter) {
  return { agent: f.agent ?? null, user: f.user ?? null, workspace: f.workspace ?? null, task: f.task ?? null }
}

/** The filter as a condition: a field left out matches every value; values are parameters. */
function matches(sql: Sql, filter: SessionFilter) {
  const f = fields(filter)
  return sql`(${f.agent}::text IS NULL OR agent = ${f.agent}) AND (${f.user}::text IS NULL OR "user" = ${f.user})
    AND (${f.workspace}::text IS NULL OR workspace = ${f.workspace}) AND (${f.task}::text IS NULL OR task = ${f.task})`
}

const toSession = (row: Row): Session => sessionFromRow(row)

function toStoredSession(row: Row): StoredSession {
  return { ...toSession(row), keyHash: Buffer.from(row.key_hash as Uint8Array) }
}
