import type { CounterRepo } from '../store/store.ts'

/** What one counter is: its key in the store, its limit, and when it expires there. */
export interface CounterRef {
  readonly key: string
  readonly limit: number
  readonly expiresAt: number
}

/** The largest block of units one instance leases at a time. */
export const MAX_LEASE = 64

/** An instance leases at most this share of what is left (1/LEASE_SHARE): the rest stays for the fleet. */
export const LEASE_SHARE = 8

/** A post-paid total read from the store is trusted this long (this instance's own charges are added at once). */
export const TOTAL_TTL_MS = 1000

/** Unspent leased units of a counter idle this long go back to the store (a sweep every half of it). */
export const LEASE_IDLE_MS = 2000

const NO_LIMIT = Number.MAX_SAFE_INTEGER

interface Lease {
  readonly counter: CounterRef
  /** Units taken from the store and not yet spent here. */
  units: number
  /** The last block was one unit: the store is near the limit, so the next refill asks for one at once. */
  nearLimit: boolean
  /** The refill in flight (one per counter and instance): requests that find no unit wait for it. */
  refill: Promise<number> | undefined
  lastUse: number
}

interface Total {
  value: number
  readAt: number
  readonly expiresAt: number
}

/**
 * Counter leases: spending a `requests` unit costs no store access on the cached path.
 *
 * Algorithm (per counter key, on one instance):
 *   - spend: a unit of the local lease if there is one (synchronous bookkeeping, no store).
 *   - else one refill in flight per counter (others wait for it, then look again): read what is
 *     left in the store; lease block = min(MAX_LEASE, floor(left / LEASE_SHARE)) units with the
 *     store's atomic conditional add (CounterRepo.spend within the limit); when that is under 2
 *     units or the add fails (another instance took some meanwhile), one unit alone. A refill
 *     that gets nothing refuses the requests waiting for it.
 * So the store's total never passes the limit (every unit spent here was added there within it);
 * far from the limit one store write serves up to MAX_LEASE requests; near it (left < 2 ×
 * LEASE_SHARE) every request is one write, as without leases, so a budget of 10 lets exactly 10
 * of 100 concurrent requests through, on one instance or several.
 *
 * The store's total counts leased units as used: an instance holds at most 1/LEASE_SHARE of what
 * was left when it leased, gives unspent units back after LEASE_IDLE_MS without a request on that
 * counter and when it closes; if it crashes, they stay counted as spent (fail closed: the budget
 * can only end up smaller, never larger).
 *
 * Post-paid totals (bytes, tokens, cost): read from the store at most every TOTAL_TTL_MS per
 * counter; this instance's charges are added to the cached total at once, another instance's are
 * seen at the next read.
 */
export class CounterLeases {
  readonly #repo: CounterRepo
  readonly #leases = new Map<string, Lease>()
  readonly #totals = new Map<string, Total>()
  #sweeper: NodeJS.Timeout | undefined
  readonly #clock: () => number
  #closed = false

  /** `clock`: epoch ms, the same the budgets use (the sweep's idle times and give-backs are on it). */
  constructor(repo: CounterRepo, clock: () => number = Date.now) {
    this.#repo = repo
    this.#clock = clock
  }

  /** Spends one unit of the counter: true, or false when the store has none left (nothing spent). */
  async spendOne(counter: CounterRef, now: number): Promise<boolean> {
    const lease = this.#lease(counter, now)
    lease.lastUse = now
    for (;;) {
      if (lease.units > 0) {
        lease.units--
        return true
      }
      if (lease.refill === undefined) {
        lease.refill = this.#refill(lease, now).finally(() => { lease.refill = undefined })
        const got = await lease.refill
        if (got === 0) return false
        lease.units += got
      } else if ((await lease.refill) === 0 && lease.units === 0) {
        return false
      }
    }
  }

  /** Gives back one unit spent by spendOne (a later budget refused the request): to the local lease. */
  giveBackOne(counter: CounterRef): void {
    const lease = this.#leases.get(counter.key)
    if (lease !== undefined) lease.units++
    else void this.#repo.spend({ key: counter.key, amount: -1, limit: NO_LIMIT, now: this.#clock(), expiresAt: counter.expiresAt })
  }

  /** The counter's total for a post-paid limit: cached, see the class comment. */
  async total(counter: CounterRef, now: number): Promise<number> {
    const cached = this.#totals.get(counter.key)
    if (cached !== undefined && now - cached.readAt < TOTAL_TTL_MS && now < cached.expiresAt) return cached.value
    const value = await this.#repo.used(counter.key, now)
    this.#totals.set(counter.key, { value, readAt: now, expiresAt: counter.expiresAt })
    this.#sweep()
    return value
  }

  /** Adds a post-paid amount to the counter in the store (no limit) and to the cached total. */
  async charge(counter: CounterRef, amount: number, now: number): Promise<void> {
    const cached = this.#totals.get(counter.key)
    if (cached !== undefined) cached.value += amount
    await this.#repo.spend({ key: counter.key, amount, limit: NO_LIMIT, now, expiresAt: counter.expiresAt })
  }

  /** Gives every unspent leased unit back to the store and stops the sweep; later spends go to the store one by one. */
  async close(): Promise<void> {
    const now = this.#clock()
    this.#closed = true
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper)
    this.#sweeper = undefined
    const leases = [...this.#leases.values()]
    this.#leases.clear()
    await Promise.all(leases.map((lease) => lease.refill?.catch(() => 0)))
    for (const lease of leases) await this.#giveBack(lease, now)
  }

  /** Units leased and not yet spent on this instance, per counter key (for tests and the docs' claims). */
  leased(key: string): number {
    return this.#leases.get(key)?.units ?? 0
  }

  #lease(counter: CounterRef, now: number): Lease {
    let lease = this.#leases.get(counter.key)
    if (lease === undefined) {
      lease = { counter, units: 0, nearLimit: false, refill: undefined, lastUse: now }
      if (!this.#closed) this.#leases.set(counter.key, lease)
      this.#sweep()
    }
    return lease
  }

  async #refill(lease: Lease, now: number): Promise<number> {
    const { key, limit, expiresAt } = lease.counter
    if (!lease.nearLimit && !this.#closed) {
      const left = limit - (await this.#repo.used(key, now))
      if (left <= 0) return 0
      const block = Math.min(MAX_LEASE, Math.floor(left / LEASE_SHARE))
      if (block >= 2 && (await this.#repo.spend({ key, amount: block, limit, now, expiresAt }))) return block
      lease.nearLimit = true
    }
    return (await this.#repo.spend({ key, amount: 1, limit, now, expiresAt })) ? 1 : 0
  }

  async #giveBack(lease: Lease, now: number): Promise<void> {
    const units = lease.units
    lease.units = 0
    if (units > 0 && lease.counter.expiresAt > now) {
      await this.#repo.spend({ key: lease.counter.key, amount: -units, limit: NO_LIMIT, now, expiresAt: lease.counter.expiresAt })
    }
  }

  /** Starts the sweep (unref'd) while there is something to sweep. */
  #sweep(): void {
    if (this.#sweeper !== undefined || this.#closed) return
    this.#sweeper = setInterval(() => void this.#idle(this.#clock()), LEASE_IDLE_MS / 2).unref()
  }

  /** Gives back idle leases, forgets expired counters and stale totals, and stops when nothing is left. */
  async #idle(now: number): Promise<void> {
    for (const [key, total] of this.#totals) if (now - total.readAt >= TOTAL_TTL_MS || now >= total.expiresAt) this.#totals.delete(key)
    for (const [key, lease] of this.#leases) {
      if (lease.refill !== undefined || now - lease.lastUse < LEASE_IDLE_MS) continue
      this.#leases.delete(key)
      await this.#giveBack(lease, now).catch(() => undefined)
    }
    if (this.#leases.size === 0 && this.#totals.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }
}
