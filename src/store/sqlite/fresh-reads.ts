import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'

/**
 * Reads on the request path (sessions by key hash, secrets by name), kept while nothing changed.
 * SQLite's data_version changes whenever another connection (the CLI, another keyvalet) committed,
 * and this connection's own writes call `clear`, so a read never returns stale state: a revocation
 * or a new secret takes effect on the very next request, as without the cache. Misses are not kept
 * (unknown keys would fill memory), and the size is bounded. One per connection, shared by its repos.
 */
export class FreshReads {
  readonly #dataVersion: StatementSync
  readonly #reads = new Map<string, unknown>()
  #seenVersion = -1

  constructor(db: DatabaseSync) {
    this.#dataVersion = db.prepare('PRAGMA data_version')
  }

  /** A kept read, if nothing was committed since by anyone. Keys are namespaced by their repo. */
  get<T>(key: string): T | undefined {
    const version = Number(this.#dataVersion.get()?.data_version)
    if (version !== this.#seenVersion) {
      this.#reads.clear()
      this.#seenVersion = version
    }
    return this.#reads.get(key) as T | undefined
  }

  keep<T>(key: string, value: T): T {
    if (this.#reads.size >= 10_000) this.#reads.clear()
    this.#reads.set(key, value)
    return value
  }

  /** After every write of this connection. */
  clear(): void {
    this.#reads.clear()
  }
}

export type Row = Record<string, SQLOutputValue>

export function blob(v: SQLOutputValue | undefined): Buffer {
  if (!(v instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return Buffer.from(v)
}
