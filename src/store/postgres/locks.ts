import { createHash } from 'node:crypto'
import type { LockRepo } from '../store.ts'
import type { Sql } from './connect.ts'
import type { NotifiedReads } from './notified-reads.ts'

/** The first key of keyvalet's two-key advisory locks ("kvlk" in ASCII); PostgreSQL keeps two-key locks apart from one-key ones. */
const LOCK_CLASS = 0x6b766c6b

/** The application_name of the lock connections (pg_stat_activity shows who holds or waits). */
export const LOCKS_APPLICATION_NAME = 'keyvalet-locks'

/**
 * LockRepo on PostgreSQL advisory locks: `work` runs inside a transaction holding
 * pg_advisory_xact_lock(LOCK_CLASS, a 32-bit hash of the name), so at most one holder per name
 * across every instance, released by the server if the holder's connection dies. Two names may
 * share a hash: they then take turns, which is slower, never wrong. Kept reads are dropped once
 * the lock is held, since the notification of the previous holder's write may still be on its way.
 *
 * `sql` is a pool of its own, never the one `work` reads and writes through: holders and waiters
 * each keep a connection for as long as they hold or wait, and would otherwise starve the work
 * they wait for of connections (a deadlock once the pool is full of them).
 */
export function postgresLocks(sql: Sql, reads: NotifiedReads): LockRepo {
  return {
    exclusive: <T>(name: string, work: () => Promise<T>): Promise<T> =>
      sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}::int, ${lockKey(name)}::int)`
        reads.flush()
        return work()
      }) as Promise<T>,
  }
}

function lockKey(name: string): number {
  return createHash('sha256').update(name).digest().readInt32BE(0)
}
