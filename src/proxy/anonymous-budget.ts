/**
 * How many audit records refusals that name no session may write: those of requests without a
 * task key or with one that names none (missing, malformed, unknown), and of bytes the parser
 * refused. Anyone who can reach a listener can cause them, so they may not grow the chained audit
 * without bound. Each source address has a token bucket of `perSourcePerMinute` records (full at
 * first sight, refilled continuously), and all sources together one of `totalPerMinute`; a record
 * is written only when both have a token. At most MAX_SOURCES addresses are tracked (the least
 * recently seen is forgotten first), so memory is bounded too; forgetting one only refills its
 * bucket, which the shared bucket still bounds.
 *
 * What is held back is counted, per listener and per source, until `takeSummary()`; so are
 * connections that closed without sending a single byte (they are no request, and are never
 * chained).
 */
export interface AnonymousLimits {
  readonly perSourcePerMinute: number
  readonly totalPerMinute: number
}

export interface AnonymousSummary {
  /** Epoch ms of the first event counted. */
  readonly since: number
  /** Records held back, per listener mode. */
  readonly suppressed: ReadonlyMap<string, { readonly count: number; readonly sources: readonly { readonly address: string; readonly count: number }[] }>
  readonly idleConnections: number
}

const MAX_SOURCES = 10_000
/** Sources named in a summary, per listener (the busiest); the counts cover every source. */
const SUMMARY_SOURCES = 10
/** Sources whose held-back records are counted one by one between summaries. */
const COUNTED_SOURCES = 1_000

interface Bucket {
  tokens: number
  at: number
}

export class AnonymousBudget {
  readonly #limits: AnonymousLimits
  readonly #clock: () => number
  readonly #sources = new Map<string, Bucket>()
  readonly #total: Bucket
  #pending: { since: number; idle: number; suppressed: Map<string, { count: number; bySource: Map<string, number> }> } | undefined

  constructor(limits: AnonymousLimits, clock: () => number) {
    this.#limits = limits
    this.#clock = clock
    this.#total = { tokens: limits.totalPerMinute, at: clock() }
  }

  /** Whether a record of `mode` from `source` may be written now; when not, it is counted for the summary. */
  admit(source: string, mode: string): boolean {
    const now = this.#clock()
    let bucket = this.#sources.get(source)
    if (bucket === undefined) {
      bucket = { tokens: this.#limits.perSourcePerMinute, at: now }
      if (this.#sources.size >= MAX_SOURCES) this.#sources.delete(this.#sources.keys().next().value as string)
    } else {
      this.#sources.delete(source) // re-inserted below: the map's order is least recently seen first
    }
    this.#sources.set(source, bucket)
    refill(bucket, this.#limits.perSourcePerMinute, now)
    refill(this.#total, this.#limits.totalPerMinute, now)
    if (bucket.tokens >= 1 && this.#total.tokens >= 1) {
      bucket.tokens -= 1
      this.#total.tokens -= 1
      return true
    }
    const held = this.#pendingNow(now).suppressed
    const entry = held.get(mode) ?? { count: 0, bySource: new Map<string, number>() }
    entry.count += 1
    if (entry.bySource.has(source) || entry.bySource.size < COUNTED_SOURCES) entry.bySource.set(source, (entry.bySource.get(source) ?? 0) + 1)
    held.set(mode, entry)
    return false
  }

  /** A connection closed without a single byte of a request. */
  idleConnection(): void {
    this.#pendingNow(this.#clock()).idle += 1
  }

  /** Epoch ms of the first event counted since the last summary, if any. */
  get pendingSince(): number | undefined {
    return this.#pending?.since
  }

  /** What was counted since the last call (undefined: nothing), and starts counting afresh. */
  takeSummary(): AnonymousSummary | undefined {
    const pending = this.#pending
    if (pending === undefined) return undefined
    this.#pending = undefined
    const suppressed = new Map([...pending.suppressed].map(([mode, e]) => [mode, {
      count: e.count,
      sources: [...e.bySource].sort((a, b) => b[1] - a[1]).slice(0, SUMMARY_SOURCES).map(([address, count]) => ({ address, count })),
    }]))
    return { since: pending.since, suppressed, idleConnections: pending.idle }
  }

  #pendingNow(now: number) {
    this.#pending ??= { since: now, idle: 0, suppressed: new Map() }
    return this.#pending
  }
}

function refill(bucket: Bucket, perMinute: number, now: number): void {
  bucket.tokens = Math.min(perMinute, bucket.tokens + (Math.max(0, now - bucket.at) * perMinute) / 60_000)
  bucket.at = now
}
