/**
 * At most one running `fetch` per key: callers that arrive while it runs share its result or its
 * failure. Nothing is kept once it settles, so the next call after that starts a new fetch.
 */
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>()
  /** Fetches started, for tests and metrics. */
  started = 0

  run(key: string, fetch: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key)
    if (running !== undefined) return running
    this.started++
    const started = fetch().finally(() => this.#running.delete(key))
    this.#running.set(key, started)
    return started
  }
}
