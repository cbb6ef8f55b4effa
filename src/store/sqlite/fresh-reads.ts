import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'

/**
 * How long a look at data_version stays good. Asking SQLite is a read transaction of its own
 * (locks on the -shm file): under load, asking once per read was the largest single cost of a
 * request. Within this bound a change committed by another process is seen; changes through this
 * connection (the admin API, `keyvalet start --demo`) are seen at once.
 */
export const CROSS_PROCESS_STALENESS_MS = 1

/**
 * Reads on the request path (sessions by key hash, secrets by name), kept while nothing changed.
 * SQLite's data_version changes whenever another connection (the CLI, another keyvalet) committed,
 * and it is looked at again once CROSS_PROCESS_STALENESS_MS has passed; this connection's own
 * writes call `clear`. So a revocation or a new secret by another process takes effect within
 * 1 ms (a CLI command takes far longer to return), one by this process on the very next request.
 * Misses are not kept (unknown keys would fill memory), and the size is bounded. One per
 * connection, shared by its repos.
 */
export class FreshReads {
  readonly #dataVersion: StatementSync
  readonly #reads = new Map<string, unknown>()
  #seenVersion = -1
  #lookedAt = Number.NEGATIVE_INFINITY

  constructor(db: DatabaseSync) {
    this.#dataVersion = db.prepare('PRAGMA data_version')
  }

  /** A kept read, if nothing was committed since by anyone (see above). Keys are namespaced by their repo. */
  get<T>(key: string): T | undefined {
    const now = performance.now()
    if (now - this.#lookedAt >= CROSS_PROCESS_STALENESS_MS) {
      this.#lookedAt = now
      const version = Number(this.#dataVersion.get()?.data_version)
      if (version !== this.#seenVersion) {
        this.#reads.clear()
        this.#seenVersion = version
      }
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
