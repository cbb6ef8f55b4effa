import type { PushedConfig, PushedConfigRepo } from '../pushed-config-repo.ts'
import type { Row, Sql } from './connect.ts'

/** keyvalet's advisory lock key for numbering pushes ("kvpushed" in ASCII), held to the push's commit. */
const PUSH_LOCK = 0x6b7670757368656an

/** PushedConfigRepo on the `pushed_configs` table: each method beside its statement. */
export function postgresPushedConfigs(sql: Sql): PushedConfigRepo {
  return {
    push: async (make) => sql.begin(async (tx) => {
      // Under the lock, the highest number read stays the highest until this row commits.
      await tx`SELECT pg_advisory_xact_lock(${PUSH_LOCK.toString()}::bigint)`
      const [top] = await tx`SELECT COALESCE(MAX(seq), 0)::bigint AS seq FROM pushed_configs`
      const row = make(Number(top?.seq ?? 0) + 1)
      await tx`INSERT INTO pushed_configs (seq, text, sha256, pushed_at, pushed_by, key_id, mac)
        VALUES (${row.seq}, ${row.text}, ${row.sha256}, ${row.pushedAt}, ${row.pushedBy}, ${row.keyId}, ${row.mac})`
      return row
    }),
    list: async (limit) => (await sql`SELECT * FROM pushed_configs ORDER BY seq DESC LIMIT ${limit}`).map(toPushed),
    latestSeq: async () => Number((await sql`SELECT COALESCE(MAX(seq), 0)::bigint AS seq FROM pushed_configs`)[0]?.seq ?? 0),
    remac: async (seq, expected, keyId, mac) =>
      (await sql`UPDATE pushed_configs SET key_id = ${keyId}, mac = ${mac} WHERE seq = ${seq} AND mac = ${expected}`).count > 0,
  }
}

function toPushed(row: Row): PushedConfig {
  return {
    seq: Number(row.seq), text: String(row.text), sha256: String(row.sha256), pushedAt: Number(row.pushed_at),
    pushedBy: String(row.pushed_by), keyId: String(row.key_id), mac: Buffer.from(row.mac as Uint8Array),
  }
}
