/**
 * Slows down guessing of admin tokens, per source address. An address may send `free` bad tokens;
 * each further one closes it for a time that doubles (base, 2×base, … up to max), during which
 * every call from it that needs a token is refused (admin_token_throttled) without the token being
 * looked at, so sending in parallel gains nothing. A good token clears the address. An address
 * quiet for `forgetMs` starts afresh. Memory is bounded: past `maxAddresses`, the address updated
 * longest ago is forgotten first.
 */
export interface ThrottleOptions {
  readonly free?: number
  readonly baseMs?: number
  readonly maxMs?: number
  readonly forgetMs?: number
  readonly maxAddresses?: number
}

interface Entry {
  failures: number
  closedUntil: number
  last: number
}

export class BadTokenThrottle {
  readonly #entries = new Map<string, Entry>()
  readonly #clock: () => number
  readonly #free: number
  readonly #baseMs: number
  readonly #maxMs: number
  readonly #forgetMs: number
  readonly #maxAddresses: number

  constructor(clock: () => number, opts: ThrottleOptions = {}) {
    this.#clock = clock
    this.#free = opts.free ?? 5
    this.#baseMs = opts.baseMs ?? 1000
    this.#maxMs = opts.maxMs ?? 60_000
    this.#forgetMs = opts.forgetMs ?? 15 * 60_000
    this.#maxAddresses = opts.maxAddresses ?? 10_000
  }

  /** Milliseconds until `address` may try a token again; 0 when it may now. */
  retryAfterMs(address: string): number {
    const entry = this.#live(address)
    return entry === undefined ? 0 : Math.max(0, entry.closedUntil - this.#clock())
  }

  /** A bad token from `address`. */
  failed(address: string): void {
    const now = this.#clock()
    const entry = this.#live(address) ?? { failures: 0, closedUntil: 0, last: now }
    entry.failures += 1
    entry.last = now
    const over = entry.failures - this.#free
    if (over > 0) entry.closedUntil = now + Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(over - 1, 30))
    this.#entries.delete(address)
    if (this.#entries.size >= this.#maxAddresses) this.#entries.delete(this.#entries.keys().next().value as string)
    this.#entries.set(address, entry)
  }

  /** A good token from `address`. */
  succeeded(address: string): void {
    this.#entries.delete(address)
  }

  /** How many addresses are remembered (for tests of the bound). */
  get size(): number {
    return this.#entries.size
  }

  #live(address: string): Entry | undefined {
    const entry = this.#entries.get(address)
    if (entry === undefined) return undefined
    const now = this.#clock()
    if (now - entry.last < this.#forgetMs || now < entry.closedUntil) return entry
    this.#entries.delete(address)
    return undefined
  }
}
