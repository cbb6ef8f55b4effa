import type { Grant } from '../../model/policy.ts'
import type { Session, StoredSession } from '../../model/session.ts'
import type { SessionRepo } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** SessionRepo on the `sessions` table: each method beside its statement. */
export function postgresSessions(sql: Sql): SessionRepo {
  return {
    insert: async (s: StoredSession) => {
      const grants = JSON.stringify(s.grants.map((g) => ({ ...g, rules: g.rules ?? null })))
      await sql`INSERT INTO sessions (id, key_hash, agent, "user", workspace, task, grants, created_at, expires_at, revoked_at)
        VALUES (${s.id}, ${s.keyHash}, ${s.agent}, ${s.user}, ${s.workspace}, ${s.task}, ${grants}, ${s.createdAt}, ${s.expiresAt}, ${s.revokedAt ?? null})`
    },
    findByKeyHash: async (keyHash: Buffer) => {
      const [row] = await sql`SELECT * FROM sessions WHERE key_hash = ${keyHash}`
      return row === undefined ? undefined : toStoredSession(row)
    },
    get: async (id: string) => {
      const [row] = await sql`SELECT * FROM sessions WHERE id = ${id}`
      return row === undefined ? undefined : toSession(row)
    },
    list: async () => (await sql`SELECT * FROM sessions ORDER BY created_at, id`).map(toSession),
    listStored: async () => (await sql`SELECT * FROM sessions ORDER BY created_at, id`).map(toStoredSession),
    revoke: async (id: string, at: number) => {
      const result = await sql`UPDATE sessions SET revoked_at = COALESCE(revoked_at, ${at}) WHERE id = ${id}`
      return result.count > 0
    },
  }
}

function toSession(row: Row): Session {
  const grants = (JSON.parse(String(row.grants)) as { rules: string[] | null }[]).map(
    (g) => ({ ...g, rules: g.rules ?? undefined }) as unknown as Grant,
  )
  return {
    id: String(row.id),
    agent: String(row.agent),
    user: String(row.user),
    workspace: String(row.workspace),
    task: String(row.task),
    grants,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
  }
}

function toStoredSession(row: Row): StoredSession {
  return { ...toSession(row), keyHash: Buffer.from(row.key_hash as Uint8Array) }
}
