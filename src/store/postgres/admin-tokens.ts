import type { AdminRole, AdminToken, StoredAdminToken } from '../../model/admin-token.ts'
import type { AdminTokenRepo } from '../store.ts'
import type { Row, Sql } from './connect.ts'
import type { NotifiedReads } from './notified-reads.ts'

/** AdminTokenRepo on the `admin_tokens` table: each method beside its statement; lookups by digest kept in `reads` as sessions.ts does. */
export function postgresAdminTokens(sql: Sql, reads: NotifiedReads): AdminTokenRepo {
  return {
    insert: async (t: StoredAdminToken) => {
      await sql`INSERT INTO admin_tokens (id, digest, name, role, created_at, expires_at, revoked_at)
        VALUES (${t.id}, ${t.digest}, ${t.name}, ${t.role}, ${t.createdAt}, ${t.expiresAt ?? null}, ${t.revokedAt ?? null})`
    },
    findByDigest: (digest: Buffer) =>
      reads.read(`a${digest.toString('hex')}`, (t: StoredAdminToken) => `admin_token:${t.id}`, async () => {
        const [row] = await sql`SELECT * FROM admin_tokens WHERE digest = ${digest}`
        return row === undefined ? undefined : { ...toToken(row), digest: Buffer.from(row.digest as Uint8Array) }
      }),
    listStored: async () => (await sql`SELECT * FROM admin_tokens ORDER BY created_at, id COLLATE "C"`).map((row) => ({ ...toToken(row), digest: Buffer.from(row.digest as Uint8Array) })),
    list: async () => (await sql`SELECT id, name, role, created_at, expires_at, revoked_at FROM admin_tokens ORDER BY created_at, id COLLATE "C"`).map(toToken),
    revoke: async (id: string, at: number) => {
      const result = await sql`UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ${at}) WHERE id = ${id}`
      reads.changed(`admin_token:${id}`)
      return result.count > 0
    },
  }
}

function toToken(row: Row): AdminToken {
  return {
    id: String(row.id),
    name: String(row.name),
    role: String(row.role) as AdminRole,
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
  }
}
