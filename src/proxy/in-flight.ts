import type { KeyvaletError } from '../errors.ts'

/** A request in the pipeline, a relayed WebSocket or a tunnel, as shutdown and the sweep see it. */
export interface Flight {
  /** Cuts it short with `reason`; it then writes its own closing record, and is untracked once that is done. */
  cut(reason: KeyvaletError): void
  /** Called by the sweep with the time (process.hrtime.bigint()): it writes its open record if it has lasted. */
  sweep?(now: bigint): void
}

/**
 * What is in flight, so that shutdown can let it finish for a grace period, then cut the rest —
 * each cut records its own end — and wait for those records; and so that a request that lasts
 * gets its open record while it does (a sweep every quarter of `openAfterMs`, at most every
 * 250 ms). Tracking costs a set insertion and removal per request: no timer, no promise.
 */
export class InFlight {
  readonly #flights = new Set<Flight>()
  readonly #sweepEveryMs: number
  readonly #idle = new Set<() => void>()
  #sweeper: NodeJS.Timeout | undefined

  constructor(openAfterMs: number) {
    this.#sweepEveryMs = Math.max(10, Math.min(250, Math.floor(openAfterMs / 4)))
  }

  get size(): number {
    return this.#flights.size
  }

  track(flight: Flight): void {
    this.#flights.add(flight)
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepEveryMs).unref()
  }

  /** Once its closing record is written (or failed). */
  untrack(flight: Flight): void {
    this.#flights.delete(flight)
    if (this.#flights.size === 0) for (const wake of this.#idle) wake()
  }

  /** Resolves once nothing is in flight, or after `ms`, whichever comes first. */
  async drained(ms: number): Promise<void> {
    if (this.#flights.size === 0) return
    const { promise: idle, resolve: wake } = Promise.withResolvers<void>()
    this.#idle.add(wake)
    const timer = setTimeout(wake, ms)
    await idle
    clearTimeout(timer)
    this.#idle.delete(wake)
  }

  /** Cuts everything in flight with `reason`; resolves when their records are written, or after `ms`. */
  async cut(reason: KeyvaletError, ms: number): Promise<void> {
    for (const flight of [...this.#flights]) flight.cut(reason)
    await this.drained(ms)
  }

  /** Stops the sweep (the listeners are closed). */
  close(): void {
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
  }

  #sweep(): void {
    if (this.#flights.size === 0) return
    const now = process.hrtime.bigint()
    for (const flight of this.#flights) flight.sweep?.(now)
  }
}
