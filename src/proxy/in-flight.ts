import type { KeyvaletError } from '../errors.ts'

/** A request in the pipeline, a relayed WebSocket or a tunnel, as shutdown and the sweep see it. */
export interface Flight {
  /** Cuts it short with `reason`; it then writes its own closing record, and is untracked once that is done. */
  cut(reason: KeyvaletError): void
  /** Called by the sweep with the time (process.hrtime.bigint()): it writes its open record if it has lasted. */
  sweep?(now: bigint): void
}

/** Where a tracked flight's slot is kept, on the flight itself. */
const SLOT: unique symbol = Symbol('in-flight slot')
type Tracked = Flight & { [SLOT]?: number | undefined }

/**
 * What is in flight, so that shutdown can let it finish for a grace period, then cut the rest —
 * each cut records its own end — and wait for those records; and so that a request that lasts
 * gets its open record while it does (a sweep every quarter of `openAfterMs`, at most every
 * 250 ms). Tracking costs a slot taken and given back per request: no timer, no promise, and
 * no allocation once the slots have grown to the most ever in flight (a long-lived Set that fills
 * and empties a request at a time reallocates its table as it does, and each table, held by an old
 * object, outlives young collections: bench/alloc-profile.ts).
 */
export class InFlight {
  /** Each flight in flight at the slot it holds (SLOT); a slot given back is undefined and on #free. */
  readonly #slots: (Flight | undefined)[] = []
  readonly #free: number[] = []
  #size = 0
  readonly #sweepEveryMs: number
  readonly #idle = new Set<() => void>()
  #sweeper: NodeJS.Timeout | undefined

  constructor(openAfterMs: number) {
    this.#sweepEveryMs = Math.max(10, Math.min(250, Math.floor(openAfterMs / 4)))
  }

  get size(): number {
    return this.#size
  }

  track(flight: Flight): void {
    if ((flight as Tracked)[SLOT] !== undefined) return
    const slot = this.#free.pop() ?? this.#slots.length
    this.#slots[slot] = flight
    ;(flight as Tracked)[SLOT] = slot
    this.#size++
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepEveryMs).unref()
  }

  /** Once its closing record is written (or failed). */
  untrack(flight: Flight): void {
    const slot = (flight as Tracked)[SLOT]
    if (slot === undefined || this.#slots[slot] !== flight) return
    this.#slots[slot] = undefined
    ;(flight as Tracked)[SLOT] = undefined
    this.#free.push(slot)
    this.#size--
    if (this.#size === 0) for (const wake of this.#idle) wake()
  }

  /** Resolves once nothing is in flight, or after `ms`, whichever comes first. */
  async drained(ms: number): Promise<void> {
    if (this.#size === 0) return
    const { promise: idle, resolve: wake } = Promise.withResolvers<void>()
    this.#idle.add(wake)
    const timer = setTimeout(wake, ms)
    await idle
    clearTimeout(timer)
    this.#idle.delete(wake)
  }

  /** Cuts everything in flight with `reason`; resolves when their records are written, or after `ms`. */
  async cut(reason: KeyvaletError, ms: number): Promise<void> {
    for (const flight of this.#slots.filter((f) => f !== undefined)) flight.cut(reason)
    await this.drained(ms)
  }

  /** Stops the sweep (the listeners are closed). */
  close(): void {
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
  }

  #sweep(): void {
    if (this.#size === 0) return
    const now = process.hrtime.bigint()
    for (const flight of this.#slots) flight?.sweep?.(now)
  }
}
