import type { DatabaseSync } from 'node:sqlite'
import type { Session, SessionFilter, StoredSession } from '../../model/session.ts'
import { grantsColumn, sessionFromRow } from '../session-row.ts'
import type { SessionCursor, SessionRepo } from '../store.ts'
import { blob, type FreshReads, type Row } from './fresh-reads.ts'

const COLUMNS = 'id, key_hash, agent, user, workspace, task, grants, created_at, expires_at, revoked_at, budget'
/** The filterable columns; a filter field left out matches every value (`? IS NULL`). */
const MATCHES = '(?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR user = ?2) AND (?3 IS NULL OR workspace = ?3) AND (?4 IS NULL OR task = ?4)'

/** SessionRepo on the `sessions` table: each method beside its statement. */
export function sqliteSessions(db: DatabaseSync, reads: FreshReads): SessionRepo {
  const insert = db.prepare(`INSERT INTO sessions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
  const byHash = db.prepare(`SELECT ${COLUMNS} FROM sessions WHERE key_hash = ?`)
  const byId = db.prepare(`SELECT ${COLUMNS} FROM sessions WHERE id = ?`)
  const all = db.prepare(`SELECT ${COLUMNS} FROM sessions ORDER BY created_at, id`)
  const revoke = db.prepare('UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?')
  const page = db.prepare(`SELECT ${COLUMNS} FROM sessions WHERE ${MATCHES} AND (created_at, id) > (?5, ?6) ORDER BY created_at, id LIMIT ?7`)
  const revokeMatching = db.prepare(`UPDATE sessions SET revoked_at = ?5 WHERE ${MATCHES} AND revoked_at IS NULL RETURNING id`)
  const bind = (f: SessionFilter) => [f.agent ?? null, f.user ?? null, f.workspace ?? null, f.task ?? null] as const
  return {
    insert: async (s: StoredSession) => {
      const grants = grantsColumn(s.grants)
      insert.run(s.id, s.keyHash, s.agent, s.user, s.workspace, s.task, grants, s.createdAt, s.expiresAt, s.revokedAt ?? null, s.budget ?? null)
      reads.clear()
    },
    findByKeyHash: async (keyHash: Buffer) => {
      const key = `s${keyHash.toString('hex')}`
      const cached = reads.get<StoredSession>(key)
      if (cached !== undefined) return cached
      const row = byHash.get(keyHash)
      return row === undefined ? undefined : reads.keep(key, toStoredSession(row))
    },
    get: async (id: string) => {
      const row = byId.get(id)
      return row === undefined ? undefined : toSession(row)
    },
    list: async () => all.all().map(toSession),
    listStored: async () => all.all().map(toStoredSession),
    revoke: async (id: string, at: number) => {
      const changed = revoke.run(at, id).changes > 0
      reads.clear()
      return changed
    },
    page: async (filter: SessionFilter, after: SessionCursor | undefined, limit: number) =>
      page.all(...bind(filter), after?.createdAt ?? Number.MIN_SAFE_INTEGER, after?.id ?? '', limit).map(toSession),
    revokeMatching: async (filter: SessionFilter, at: number) => {
      if (bind(filter).every((v) => v === null)) throw new Error('revokeMatching needs a filter with at least one field')
      const ids = revokeMatching.all(...bind(filter), at).map((row) => String(row.id))
      reads.clear()
      return ids
    },
  }
}

const toSession = (row: Row): Session => sessionFromRow(row)

function toStoredSession(row: Row): StoredSession {
  return { ...toSession(row), keyHash: blob(row.key_hash) }
}
