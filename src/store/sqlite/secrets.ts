import type { DatabaseSync } from 'node:sqlite'
import type { SecretRecord, SecretRepo } from '../store.ts'
import { blob, type FreshReads, type Row } from './fresh-reads.ts'

/** SecretRepo on the `secrets` table: each method beside its statement. */
export function sqliteSecrets(db: DatabaseSync, reads: FreshReads): SecretRepo {
  const put = db.prepare(
    `INSERT INTO secrets (name, envelope, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET
       envelope = excluded.envelope, key_id = excluded.key_id, updated_at = excluded.updated_at`,
  )
  const get = db.prepare('SELECT name, envelope, key_id, created_at, updated_at FROM secrets WHERE name = ?')
  const list = db.prepare('SELECT name, key_id, created_at, updated_at FROM secrets ORDER BY name')
  const remove = db.prepare('DELETE FROM secrets WHERE name = ?')
  const swap = db.prepare('UPDATE secrets SET envelope = ?, key_id = ?, updated_at = ? WHERE name = ? AND envelope = ?')
  return {
    put: async (r: SecretRecord) => {
      put.run(r.name, r.envelope, r.keyId, r.createdAt, r.updatedAt)
      reads.clear()
    },
    get: async (name: string) => {
      const key = `k${name}`
      const cached = reads.get<SecretRecord>(key)
      if (cached !== undefined) return cached
      const row = get.get(name)
      return row === undefined ? undefined : reads.keep(key, { ...toSecretMeta(row), envelope: blob(row.envelope) })
    },
    list: async () => list.all().map(toSecretMeta),
    delete: async (name: string) => {
      const changed = remove.run(name).changes > 0
      reads.clear()
      return changed
    },
    swap: async (name: string, expected: Buffer, r: SecretRecord) => {
      const changed = swap.run(r.envelope, r.keyId, r.updatedAt, name, expected).changes > 0
      reads.clear()
      return changed
    },
  }
}

function toSecretMeta(row: Row): Omit<SecretRecord, 'envelope'> {
  return {
    name: String(row.name),
    keyId: String(row.key_id),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  }
}
