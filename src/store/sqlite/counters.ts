import type { DatabaseSync } from 'node:sqlite'
import type { CounterRepo } from '../store.ts'

/** Expired counters removed per spend, so the table stays bounded without a sweeper or a long write. */
const PURGE_BATCH = 16

/** CounterRepo on the `counters` table: each method beside its statement. */
export function sqliteCounters(db: DatabaseSync): CounterRepo {
  // One statement, so it is atomic across processes without a transaction: the insert carries
  // the amount only if it fits on its own; on conflict the update applies only if the sum fits
  // (an expired counter starts again from 0). RETURNING yields no row when nothing was written.
  const spend = db.prepare(`
    INSERT INTO counters (key, used, expires_at) SELECT :key, :amount, :expires WHERE :amount <= :limit
    ON CONFLICT (key) DO UPDATE SET
      used = CASE WHEN expires_at <= :now THEN excluded.used ELSE used + excluded.used END,
      expires_at = CASE WHEN expires_at <= :now THEN excluded.expires_at ELSE max(expires_at, excluded.expires_at) END
    WHERE (CASE WHEN expires_at <= :now THEN 0 ELSE used END) + excluded.used <= :limit
    RETURNING used`)
  const used = db.prepare('SELECT used FROM counters WHERE key = ? AND expires_at > ?')
  const purge = db.prepare(`DELETE FROM counters WHERE key IN (SELECT key FROM counters WHERE expires_at <= ? LIMIT ${PURGE_BATCH})`)
  return {
    spend: async ({ key, amount, limit, now, expiresAt }) => {
      purge.run(now)
      return spend.get({ key, amount, limit, expires: expiresAt, now }) !== undefined
    },
    used: async (key, now) => Number(used.get(key, now)?.used ?? 0),
  }
}
