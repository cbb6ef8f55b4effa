import { isServerUnreachable, storeUnavailable } from './unreachable.ts'

export interface NotifiedReadsOptions {
  /** How often the change feed proves it is still hearing every change (a heartbeat round trip). */
  readonly resyncMs: number
  /** How long kept reads still answer while the server cannot be reached; then store_unavailable. */
  readonly graceMs: number
  /** Monotonic milliseconds (performance.now by default; tests move it). */
  readonly now?: () => number
}

/** How many resync intervals kept reads answer for without a heartbeat coming back. */
export const TRUSTED_RESYNCS = 3

interface Kept {
  readonly value: unknown
  /** The change that makes it stale (`session:ses_…`, `secret:NAME`, `admin_token:…`). */
  readonly change: string
  readonly keptAt: number
}

/**
 * Reads on the request path (sessions by key hash, secrets by name, admin tokens by digest) on
 * PostgreSQL, kept until the store says they changed: the PostgreSQL form of sqlite/fresh-reads.ts.
 * The change feed (change-feed.ts) calls `changed` with each notification (sent by the database in
 * the writing transaction, so only once it committed), `listening` whenever its LISTEN connection
 * (re)started, and `confirmed` when a heartbeat it sent came back (notifications arrive in commit
 * order, so every change committed before the heartbeat was sent has been heard).
 *
 * The algorithm: a kept read answers only while the feed is trusted — listening, and a heartbeat
 * came back within 3 × resyncMs (a late heartbeat or two on a loaded machine costs reads from the
 * server, not staleness); otherwise the read goes to the server (and is kept again).
 * A change removes exactly the reads it names; `all:` and a (re)started LISTEN remove every read
 * (notifications may have been missed while no connection listened). A read that was in flight
 * while anything was removed is returned but not kept (it may predate the change). Misses are not
 * kept, and the size is bounded. When the server cannot be reached, a kept read still answers
 * until `graceMs` after it was last known current (read, or confirmed by a heartbeat); after that,
 * and at once for a read never kept, the answer is KeyvaletError store_unavailable.
 */
export class NotifiedReads {
  readonly #kept = new Map<string, Kept>()
  /** Keys of kept reads, by the change that makes them stale. */
  readonly #byChange = new Map<string, Set<string>>()
  readonly #changeListeners = new Set<(payload: string | undefined) => void>()
  readonly #resyncMs: number
  readonly #graceMs: number
  readonly #now: () => number
  /** Bumped by every removal: a read started under another epoch is not kept. */
  #epoch = 0
  #listening = false
  /** When the last heartbeat that came back was sent (or the LISTEN started). */
  #confirmedAt = Number.NEGATIVE_INFINITY
  /** Reads answered from what was kept, reads that went to the server, and reads kept (for tests and metrics). */
  hits = 0
  loads = 0
  keeps = 0

  constructor(opts: NotifiedReadsOptions) {
    this.#resyncMs = opts.resyncMs
    this.#graceMs = opts.graceMs
    this.#now = opts.now ?? (() => performance.now())
  }

  /** Whether kept reads answer without asking the server now. */
  get trusted(): boolean {
    return this.#listening && this.#now() - this.#confirmedAt <= TRUSTED_RESYNCS * this.#resyncMs
  }

  /**
   * The kept read under `key` while trusted, else `load()` (kept, under the change `changeOf`
   * names, if nothing was removed meanwhile). `key` is namespaced by the repo.
   */
  async read<T>(key: string, changeOf: (value: T) => string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const kept = this.#kept.get(key)
    if (kept !== undefined && this.trusted) {
      this.hits++
      return kept.value as T
    }
    this.loads++
    const epoch = this.#epoch
    const startedAt = this.#now()
    let value: T | undefined
    try {
      value = await load()
    } catch (err) {
      if (!isServerUnreachable(err)) throw err
      const current = this.#kept.get(key)
      if (current !== undefined && this.#now() - Math.max(current.keptAt, this.#confirmedAt) <= this.#graceMs) return current.value as T
      throw storeUnavailable(err)
    }
    if (value === undefined) this.#remove(key)
    else if (this.#listening && epoch === this.#epoch) this.#keep(key, value, changeOf(value), startedAt)
    return value
  }

  /**
   * Calls `listener` with every change notification's payload as it is heard, and with undefined
   * when the LISTEN (re)starts (changes may have gone unheard). Returns the function that stops it.
   */
  onChange(listener: (payload: string | undefined) => void): () => void {
    this.#changeListeners.add(listener)
    return () => void this.#changeListeners.delete(listener)
  }

  /** A change notification's payload, `kind:id` (`all:TABLE` for every read). */
  changed(payload: string): void {
    for (const listener of this.#changeListeners) listener(payload)
    this.#epoch++
    if (payload.startsWith('all:')) return this.#clear()
    const keys = this.#byChange.get(payload)
    if (keys === undefined) return
    this.#byChange.delete(payload)
    for (const key of keys) this.#kept.delete(key)
  }

  /** The LISTEN (re)started: anything may have changed unheard before it, so every read goes. */
  listening(): void {
    for (const listener of this.#changeListeners) listener(undefined)
    this.#epoch++
    this.#clear()
    this.#listening = true
    this.#confirmedAt = this.#now()
  }

  /** A heartbeat sent at `sentAt` (this clock) came back through the LISTEN connection. */
  confirmed(sentAt: number): void {
    if (sentAt > this.#confirmedAt) this.#confirmedAt = sentAt
  }

  /** Drops every kept read (a fleet lock was taken: what it guards must be read from the server). */
  flush(): void {
    this.#epoch++
    this.#clear()
  }

  /** The feed stopped (the store is closing): nothing kept answers any more. */
  stopped(): void {
    this.#listening = false
    this.#epoch++
    this.#clear()
  }

  #keep(key: string, value: unknown, change: string, keptAt: number): void {
    if (this.#kept.size >= 10_000) this.#clear()
    this.keeps++
    this.#remove(key)
    this.#kept.set(key, { value, change, keptAt })
    let keys = this.#byChange.get(change)
    if (keys === undefined) this.#byChange.set(change, (keys = new Set()))
    keys.add(key)
  }

  #remove(key: string): void {
    const kept = this.#kept.get(key)
    if (kept === undefined) return
    this.#kept.delete(key)
    this.#byChange.get(kept.change)?.delete(key)
  }

  #clear(): void {
    this.#kept.clear()
    this.#byChange.clear()
  }
}
