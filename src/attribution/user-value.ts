import { createHmac, randomBytes } from 'node:crypto'
import type { AttributionOptions } from '../model/options.ts'
import type { Vault } from '../vault/vault.ts'

/** The vault record of the pseudonym key (reserved keyvalet.* name: no connector can inject it). */
export const ATTRIBUTION_KEY_SECRET = 'keyvalet.attribution-key'

export interface UserValue {
  /** What is written into the request. */
  readonly value: string
  /** Values an existing field may already hold without naming someone else: the raw and the written form. */
  readonly same: ReadonlySet<string>
}

/**
 * The user value a connector's attribution writes: the session's user id, or its pseudonym
 * (hex of the first 128 bits of HMAC-SHA256 under a 256-bit keyvalet key). The key is created on
 * first use and never rotated by keyvalet: a new key would give every user a new pseudonym.
 */
export class UserValues {
  readonly #vault: Vault
  #creating: Promise<void> | undefined

  constructor(vault: Vault) {
    this.#vault = vault
  }

  async for(options: AttributionOptions, user: string): Promise<UserValue> {
    if (options.value === 'user') return { value: user, same: new Set([user]) }
    const value = await this.pseudonym(user)
    return { value, same: new Set([user, value]) }
  }

  async pseudonym(user: string): Promise<string> {
    const key = await this.#currentKey()
    try {
      return createHmac('sha256', key).update(`keyvalet attribution v1\0${user}`, 'utf8').digest().subarray(0, 16).toString('hex')
    } finally {
      key.fill(0)
    }
  }

  /**
   * Read on every use (cheap while the record is unchanged), so that if two instances created a
   * key at the same moment, both use the one that was stored last from the next request on.
   */
  async #currentKey(): Promise<Buffer> {
    const stored = await this.#vault.openOptional(ATTRIBUTION_KEY_SECRET)
    if (stored !== undefined) return stored
    this.#creating ??= this.#vault.put(ATTRIBUTION_KEY_SECRET, randomBytes(32)).finally(() => { this.#creating = undefined })
    await this.#creating
    return this.#vault.open(ATTRIBUTION_KEY_SECRET)
  }
}
