import type { DatabaseSync } from 'node:sqlite'
import type { AdminRole, AdminToken, StoredAdminToken } from '../../model/admin-token.ts'
import type { AdminTokenRepo } from '../store.ts'
import { blob, type FreshReads, type Row } from './fresh-reads.ts'

const COLUMNS = 'id, digest, name, role, created_at, expires_at, revoked_at'

/** AdminTokenRepo on the `admin_tokens` table: each method beside its statement. */
export function sqliteAdminTokens(db: DatabaseSync, reads: FreshReads): AdminTokenRepo {
  const insert = db.prepare(`INSERT INTO admin_tokens (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`)
  const byDigest = db.prepare(`SELECT ${COLUMNS} FROM admin_tokens WHERE digest = ?`)
  const all = db.prepare(`SELECT ${COLUMNS} FROM admin_tokens ORDER BY created_at, id`)
  const revoke = db.prepare('UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?')
  return {
    insert: async (t: StoredAdminToken) => {
      insert.run(t.id, t.digest, t.name, t.role, t.createdAt, t.expiresAt ?? null, t.revokedAt ?? null)
      reads.clear()
    },
    findByDigest: async (digest: Buffer) => {
      const key = `a${digest.toString('hex')}`
      const cached = reads.get<StoredAdminToken>(key)
      if (cached !== undefined) return cached
      const row = byDigest.get(digest)
      return row === undefined ? undefined : reads.keep(key, { ...toToken(row), digest: blob(row.digest) })
    },
    list: async () => all.all().map(toToken),
    listStored: async () => all.all().map((row) => ({ ...toToken(row), digest: blob(row.digest) })),
    revoke: async (id: string, at: number) => {
      const changed = revoke.run(at, id).changes > 0
      reads.clear()
      return changed
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
