import type { CounterRepo } from '../store.ts'
import type { Sql } from './connect.ts'

/** Expired counters removed per spend, so the table stays bounded without a sweeper or a long write. */
const PURGE_BATCH = 16

/** CounterRepo on the `counters` table: each method beside its statement. */
export function postgresCounters(sql: Sql): CounterRepo {
  return {
    spend: async ({ key, amount, limit, now, expiresAt }) => {
      // Expired rows are skipped when locked by another purge, so purges never wait on each other.
      await sql`DELETE FROM counters WHERE key IN (
        SELECT key FROM counters WHERE expires_at <= ${now} LIMIT ${PURGE_BATCH} FOR UPDATE SKIP LOCKED)`
      // One statement, so it is atomic across instances: the insert carries the amount only if it
      // fits on its own; on a conflict PostgreSQL locks the existing row and evaluates the update's
      // WHERE against its latest committed version, so two spenders never both take the last unit
      // (an expired counter starts again from 0). RETURNING yields no row when nothing was written.
      const rows = await sql`
        INSERT INTO counters AS c (key, used, expires_at) SELECT ${key}::text, ${amount}::bigint, ${expiresAt}::bigint WHERE ${amount}::bigint <= ${limit}::bigint
        ON CONFLICT (key) DO UPDATE SET
          used = CASE WHEN c.expires_at <= ${now} THEN excluded.used ELSE c.used + excluded.used END,
          expires_at = CASE WHEN c.expires_at <= ${now} THEN excluded.expires_at ELSE GREATEST(c.expires_at, excluded.expires_at) END
        WHERE (CASE WHEN c.expires_at <= ${now} THEN 0 ELSE c.used END) + excluded.used <= ${limit}
        RETURNING c.used`
      return rows.length > 0
    },
    used: async (key, now) => {
      const [row] = await sql`SELECT used FROM counters WHERE key = ${key} AND expires_at > ${now}`
      return Number(row?.used ?? 0)
    },
  }
}
