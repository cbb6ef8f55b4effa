import type { StoreLocation } from './location.ts'
import { PostgresStore } from './postgres-store.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { Store } from './store.ts'

/** Opens (and migrates) the store at a location: the one place that knows every implementation. */
export async function openStore(location: StoreLocation): Promise<Store> {
  if (location.kind === 'sqlite') return SqliteStore.open(location.path, { fsync: location.fsync })
  return PostgresStore.open(location)
}
