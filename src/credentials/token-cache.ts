import { SingleFlight } from './single-flight.ts'
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
  readonly #flights = new SingleFlight<Token>()

  constructor(clock: () => number, refreshBeforeMs: number) {
    this.#clock = clock
    this.#refreshBeforeMs = refreshBeforeMs
  }

  /** The cached token when it is fresh, else the result of the one running (or a new) `fetch`. */
  get(key: string, fetch: () => Promise<Token>): Promise<Token> {
    const cached = this.#tokens.get(key)
    if (cached !== undefined && this.fresh(cached)) return Promise.resolve(cached)
    return this.#flights.run(key, async () => {
      const token = await fetch()
      this.#tokens.set(key, token)
      return token
    })
  }

  /** Fetches started, for tests and metrics. */
  get fetches(): number {
    return this.#flights.started
  }

  /** Forgets `token` under `key` (the upstream refused it) unless a newer one replaced it already. */
  invalidate(key: string, token: Token): void {
    if (this.#tokens.get(key)?.value === token.value) this.#tokens.delete(key)
  }

  fresh(token: Token): boolean {
    return isFresh(token, this.#clock(), this.#refreshBeforeMs)
  }
}

/** Whether `token` may still be sent at `now`: no expiry, or more than `refreshBeforeMs` left. */
export function isFresh(token: Token, now: number, refreshBeforeMs: number): boolean {
  return token.expiresAt === undefined || token.expiresAt - refreshBeforeMs > now
}
