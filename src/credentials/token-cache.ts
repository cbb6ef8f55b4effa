import type { Token } from './source.ts'

/**
 * Cached tokens by key (a user, an installation and scope), fetched at most once at a time per
 * key: requests that arrive while a fetch runs wait for its result, and a failure reaches all of
 * them (then the next request tries again). A token is reused until `refreshBeforeMs` before it
 * expires, so none is sent that could expire in flight.
 */
export class TokenCache {
  readonly #clock: () => number
  readonly #refreshBeforeMs: number
  readonly #tokens = new Map<string, Token>()
  readonly #inflight = new Map<string, Promise<Token>>()
  /** Fetches started, for tests and metrics. */
  fetches = 0

  constructor(clock: () => number, refreshBeforeMs: number) {
    this.#clock = clock
    this.#refreshBeforeMs = refreshBeforeMs
  }

  /** The cached token when it is fresh, else the result of the one running (or a new) `fetch`. */
  get(key: string, fetch: () => Promise<Token>): Promise<Token> {
    const cached = this.#tokens.get(key)
    if (cached !== undefined && this.fresh(cached)) return Promise.resolve(cached)
    const running = this.#inflight.get(key)
    if (running !== undefined) return running
    this.fetches++
    const started = fetch().then(
      (token) => {
        this.#tokens.set(key, token)
        return token
      },
    ).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, started)
    return started
  }

  /** Forgets `token` under `key` (the upstream refused it) unless a newer one replaced it already. */
  invalidate(key: string, token: Token): void {
    if (this.#tokens.get(key)?.value === token.value) this.#tokens.delete(key)
  }

  fresh(token: Token): boolean {
    return token.expiresAt === undefined || token.expiresAt - this.#refreshBeforeMs > this.#clock()
  }
}
