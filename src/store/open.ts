import type { KeptReads, StoreLocation } from './location.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { Store } from './store.ts'

/**
 * Opens (and migrates) the store at a location: the one place that knows every implementation.
 * `keptReads`: a serving instance's request-path reads on PostgreSQL (SQLite keeps its own, sqlite/fresh-reads.ts).
 * `auditYieldsWhenBusy`: SQLite's audit file waits for another writer without blocking the thread (SqliteStore.open).
 * `backgroundCheckpoints`: SQLite's WAL checkpoints run on their own thread, not inside this store's commits (SqliteStore.open).
 * The PostgreSQL store (and its driver) is loaded only when the location is PostgreSQL: an instance
 * on SQLite does not hold its modules in memory.
 */
export async function openStore(location: StoreLocation, opts: { readonly keptReads?: KeptReads; readonly auditYieldsWhenBusy?: boolean; readonly backgroundCheckpoints?: boolean } = {}): Promise<Store> {
  if (location.kind === 'sqlite') return SqliteStore.open(location.path, { fsync: location.fsync, auditYieldsWhenBusy: opts.auditYieldsWhenBusy === true, backgroundCheckpoints: opts.backgroundCheckpoints === true })
  const { PostgresStore } = await import('./postgres-store.ts')
  return PostgresStore.open(location, opts.keptReads === undefined ? {} : { keptReads: opts.keptReads })
}
