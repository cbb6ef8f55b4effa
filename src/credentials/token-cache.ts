import { createHash } from 'node:crypto'
import type { LockRepo } from '../store/store.ts'
import type { Vault } from '../vault/vault.ts'
import { SingleFlight } from './single-flight.ts'
import type { Token } from './source.ts'

/** Where the tokens of a cache are shared with the other processes on the store. */
export interface SharedTokens {
  readonly vault: Vault
  readonly locks: LockRepo
  /** Tells this cache's tokens apart from other caches' (`github_app:<connector>`). */
  readonly namespace: string
}

/**
 * Cached tokens by key (a user, an installation and scope), fetched at most once at a time per
 * key: requests that arrive while a fetch runs wait for its result, and a failure reaches all of
 * them (then the next request tries again). A token is reused until `refreshBeforeMs` before it
 * expires, so none is sent that could expire in flight.
 *
 * With `shared`, a token is also kept in the vault (sealed like any secret, under
 * `keyvalet.token.<hash of namespace and key>`), and a fetch runs under the store's lock of that
 * name after reading the vault again: across every instance on the store, one fetch per token,
 * and the others use what it stored.
 */
export class TokenCache {
  readonly #clock: () => number
  readonly #refreshBeforeMs: number
  readonly #shared: SharedTokens | undefined
  readonly #tokens = new Map<string, Token>()
  /** The value the upstream last refused, per key: not taken from the vault again. */
  readonly #refused = new Map<string, string>()
  readonly #flights = new SingleFlight<Token>()

  constructor(clock: () => number, refreshBeforeMs: number, shared?: SharedTokens) {
    this.#clock = clock
    this.#refreshBeforeMs = refreshBeforeMs
    this.#shared = shared
  }

  /** The cached token when it is fresh, else the result of the one running (or a new) `fetch`. */
  get(key: string, fetch: () => Promise<Token>): Promise<Token> {
    const cached = this.#tokens.get(key)
    if (cached !== undefined && this.#usable(key, cached)) return Promise.resolve(cached)
    return this.#flights.run(key, async () => {
      const token = this.#shared === undefined ? await this.#fetched(key, fetch) : await this.#fetchShared(this.#shared, key, fetch)
      this.#tokens.set(key, token)
      return token
    })
  }

  async #fetchShared(shared: SharedTokens, key: string, fetch: () => Promise<Token>): Promise<Token> {
    const name = sharedTokenName(shared.namespace, key)
    const stored = await this.#readShared(shared, key, name)
    if (stored !== undefined) return stored
    return shared.locks.exclusive(name, async () => {
      const again = await this.#readShared(shared, key, name)
      if (again !== undefined) return again
      const token = await this.#fetched(key, fetch)
      // Not storing it costs another instance a fetch of its own, never a wrong token.
      await shared.vault.put(name, Buffer.from(JSON.stringify(token))).catch(() => {})
      return token
    })
  }

  /** A token just fetched: sent even if the server gave the refused value again. */
  async #fetched(key: string, fetch: () => Promise<Token>): Promise<Token> {
    const token = await fetch()
    this.#refused.delete(key)
    return token
  }

  /** The token stored under `name` when it may be sent; unreadable records count as none. */
  async #readShared(shared: SharedTokens, key: string, name: string): Promise<Token | undefined> {
    const value = await shared.vault.openOptional(name).catch(() => undefined)
    if (value === undefined) return undefined
    try {
      const token = JSON.parse(value.toString('utf8')) as Token
      return typeof token.value === 'string' && this.#usable(key, token) ? token : undefined
    } catch {
      return undefined
    } finally {
      value.fill(0)
    }
  }

  #usable(key: string, token: Token): boolean {
    return this.fresh(token) && this.#refused.get(key) !== token.value
  }

  /** Fetches started, for tests and metrics. */
  get fetches(): number {
    return this.#flights.started
  }

  /** Forgets `token` under `key` (the upstream refused it) unless a newer one replaced it already. */
  invalidate(key: string, token: Token): void {
    this.#refused.set(key, token.value)
    if (this.#tokens.get(key)?.value === token.value) this.#tokens.delete(key)
  }

  fresh(token: Token): boolean {
    return isFresh(token, this.#clock(), this.#refreshBeforeMs)
  }
}

/** The vault record of a shared token: its key hashed, so that no scope or user id shows in a name. */
export function sharedTokenName(namespace: string, key: string): string {
  return `keyvalet.token.${createHash('sha256').update(`${namespace}\n${key}`).digest('hex').slice(0, 40)}`
}

/** Whether `token` may still be sent at `now`: no expiry, or more than `refreshBeforeMs` left. */
export function isFresh(token: Token, now: number, refreshBeforeMs: number): boolean {
  return token.expiresAt === undefined || token.expiresAt - refreshBeforeMs > now
}
