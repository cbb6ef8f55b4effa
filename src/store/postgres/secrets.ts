import type { SecretRecord, SecretRepo } from '../store.ts'
import type { Row, Sql } from './connect.ts'
import type { NotifiedReads } from './notified-reads.ts'

/** SecretRepo on the `secrets` table: each method beside its statement; reads by name kept in `reads` as sessions.ts does. */
export function postgresSecrets(sql: Sql, reads: NotifiedReads): SecretRepo {
  const changed = <T>(name: string, result: T): T => {
    reads.changed(`secret:${name}`)
    return result
  }
  return {
    put: async (r: SecretRecord) => {
      changed(r.name, await sql`INSERT INTO secrets (name, envelope, key_id, created_at, updated_at)
        VALUES (${r.name}, ${r.envelope}, ${r.keyId}, ${r.createdAt}, ${r.updatedAt})
        ON CONFLICT (name) DO UPDATE SET envelope = excluded.envelope, key_id = excluded.key_id, updated_at = excluded.updated_at`)
    },
    get: (name: string) =>
      reads.read(`k${name}`, (r: SecretRecord) => `secret:${r.name}`, async () => {
        const [row] = await sql`SELECT name, envelope, key_id, created_at, updated_at FROM secrets WHERE name = ${name}`
        return row === undefined ? undefined : { ...toSecretMeta(row), envelope: Buffer.from(row.envelope as Uint8Array) }
      }),
    list: async () => (await sql`SELECT name, key_id, created_at, updated_at FROM secrets ORDER BY name`).map(toSecretMeta),
    delete: async (name: string) => changed(name, (await sql`DELETE FROM secrets WHERE name = ${name}`).count > 0),
    swap: async (name: string, expected: Buffer, r: SecretRecord) => {
      const result = await sql`UPDATE secrets SET envelope = ${r.envelope}, key_id = ${r.keyId}, updated_at = ${r.updatedAt}
        WHERE name = ${name} AND envelope = ${expected}`
      return changed(name, result.count > 0)
    },
  }
}

function toSecretMeta(row: Row): Omit<SecretRecord, 'envelope'> {
  return { name: String(row.name), keyId: String(row.key_id), createdAt: Number(row.created_at), updatedAt: Number(row.updated_at) }
}
