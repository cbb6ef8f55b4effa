import { generateKeyPairSync, randomUUID } from 'node:crypto'
import type { CryptoKey, JWK } from 'jose'
import { KeyvaletError } from '../errors.ts'
import type { Vault } from '../vault/vault.ts'

/** The vault record of the signing keys (a reserved keyvalet.* name: no connector can inject it). */
export const ASSERTION_KEYS_SECRET = 'keyvalet.assertion-keys'

/** One key as stored: a JSON list of these, private JWKs included, encrypted by the vault. */
interface StoredKey {
  readonly kid: string
  readonly jwk: JWK
  /** Epoch ms. */
  readonly created_at: number
  /**
   * active: the newest key, published. retiring: a key a rotation replaced, published until
   * retire_at so tokens it signed still verify. Whichever live key has the latest activate_at
   * that has come signs: a new key is published ahead of signing, its predecessor signs until then.
   */
  readonly state: 'active' | 'retiring'
  /** Epoch ms from which the key may sign; absent = from created_at. */
  readonly activate_at?: number
  readonly retire_at?: number
}

/** The public half of a key as the JWKS publishes it: an allow-list of members, never `d`. */
export interface PublicJwk {
  readonly kty: 'OKP'
  readonly crv: 'Ed25519'
  readonly x: string
  readonly kid: string
  readonly alg: 'EdDSA'
  readonly use: 'sig'
}

interface LoadedKey {
  readonly stored: StoredKey
  readonly publicJwk: PublicJwk
  readonly signer: CryptoKey
}

export interface AssertionClaims {
  readonly issuer: string
  readonly audience: string
  readonly ttlSeconds: number
  readonly subject: string
  /** Extra claims (act, workspace, task, sid). */
  readonly claims: Readonly<Record<string, unknown>>
}

/**
 * keyvalet's assertion signing keys (Ed25519), kept in the vault and created on first use.
 * Every use re-reads the vault record (a cheap read while unchanged), so a `keyvalet assertion
 * rotate` by another process takes effect on the next request. A retiring key stays published
 * until its retire_at and then drops out (lazily here; from the record on the next rotate).
 */
export class AssertionKeys {
  readonly #vault: Vault
  readonly #clock: () => number
  #seen: { readonly raw: Buffer; readonly keys: readonly LoadedKey[] } | undefined
  #creating: Promise<void> | undefined

  constructor(vault: Vault, clock: () => number) {
    this.#vault = vault
    this.#clock = clock
  }

  /** Signs one assertion with the active key (creating the first key if there is none). */
  async sign(a: AssertionClaims): Promise<{ readonly token: string; readonly kid: string; readonly jti: string }> {
    const key = await this.#active()
    const now = Math.floor(this.#clock() / 1000)
    const jti = randomUUID()
    const { SignJWT } = await jose()
    const token = await new SignJWT({ ...a.claims })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.stored.kid })
      .setIssuer(a.issuer)
      .setSubject(a.subject)
      .setAudience(a.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + a.ttlSeconds)
      .setJti(jti)
      .sign(key.signer)
    return { token, kid: key.stored.kid, jti }
  }

  /** The JWKS document: public members of every key still published. Creates the first key if none. */
  async jwks(): Promise<{ keys: PublicJwk[] }> {
    await this.#active()
    return { keys: this.#live(await this.#load()).map((k) => k.publicJwk) }
  }

  /**
   * A new key, published at once and signing from `aheadMs` on, so that verifiers that cached the
   * JWKS (max-age 300 s) learn it before they meet it. Until then the previous key signs; after,
   * it stays published for `overlapMs` (so tokens it signed still verify). Keys whose overlap has
   * ended are dropped from the record.
   */
  async rotate(overlapMs: number, aheadMs = 0): Promise<{ readonly active: string; readonly activateAt: number; readonly retiring: readonly { kid: string; retireAt: number }[] }> {
    const now = this.#clock()
    const live = this.#live(await this.#load())
    // With nothing signing yet there is no one to hand over from: the new key signs at once.
    const activateAt = signingKey(live, now) === undefined ? now : now + aheadMs
    const kept: StoredKey[] = []
    for (const { stored } of live) {
      if (stored.state === 'retiring') kept.push(stored)
      else if (aheadMs > 0 || overlapMs > 0) kept.push({ ...stored, state: 'retiring', retire_at: activateAt + overlapMs })
    }
    const fresh = { ...(await newKey(now)), ...(activateAt > now ? { activate_at: activateAt } : {}) }
    await this.#store([...kept, fresh])
    return { active: fresh.kid, activateAt, retiring: kept.map((k) => ({ kid: k.kid, retireAt: k.retire_at ?? now })) }
  }

  async #active(): Promise<LoadedKey> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const active = signingKey(await this.#load(), this.#clock())
      if (active !== undefined) return active
      // Single flight within this process; across processes the last write wins and everyone
      // re-reads the record, so all instances sign with the key that was actually stored.
      this.#creating ??= this.#createFirst().finally(() => { this.#creating = undefined })
      await this.#creating
    }
    throw unavailable('no active key after creating one')
  }

  async #createFirst(): Promise<void> {
    const existing = this.#live(await this.#load()).map((k) => k.stored)
    if (existing.some((k) => k.state === 'active')) return
    await this.#store([...existing, await newKey(this.#clock())])
  }

  #live(keys: readonly LoadedKey[]): LoadedKey[] {
    const now = this.#clock()
    return keys.filter((k) => k.stored.state === 'active' || (k.stored.retire_at ?? 0) > now)
  }

  async #store(keys: readonly StoredKey[]): Promise<void> {
    await this.#vault.put(ASSERTION_KEYS_SECRET, Buffer.from(JSON.stringify(keys)))
  }

  /** The record as loaded keys; parsed and imported again only when its bytes changed. */
  async #load(): Promise<readonly LoadedKey[]> {
    const raw = await this.#vault.openOptional(ASSERTION_KEYS_SECRET)
    if (raw === undefined) return []
    if (this.#seen?.raw.equals(raw) === true) {
      raw.fill(0)
      return this.#seen.keys
    }
    const keys = await Promise.all(parseRecord(raw).map(loadKey))
    this.#seen = { raw, keys }
    return keys
  }
}

/** jose is loaded on the first signature or key, not at start: most instances never make an assertion. */
const jose = (): Promise<typeof import('jose')> => import('jose')

async function newKey(now: number): Promise<StoredKey> {
  const { calculateJwkThumbprint } = await jose()
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as JWK
  return { kid: await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x ?? '' }), jwk, created_at: now, state: 'active' }
}

async function loadKey(stored: StoredKey): Promise<LoadedKey> {
  const { importJWK } = await jose()
  const signer = await importJWK({ ...stored.jwk, alg: 'EdDSA' }, 'EdDSA')
  if (signer instanceof Uint8Array) throw unavailable('not an asymmetric key')
  const publicJwk: PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: stored.jwk.x ?? '', kid: stored.kid, alg: 'EdDSA', use: 'sig' }
  return { stored, publicJwk, signer }
}

/** The key that signs now: of the live keys whose activation has come, the one activated last. */
function signingKey(keys: readonly LoadedKey[], now: number): LoadedKey | undefined {
  const from = (k: StoredKey): number => k.activate_at ?? k.created_at
  const live = keys.filter((k) => k.stored.state === 'active' || (k.stored.retire_at ?? 0) > now)
  // Ties (a rotation within the same millisecond): the key marked active is the newer one.
  const rank = (k: StoredKey): number => (k.state === 'active' ? 1 : 0)
  return live.filter((k) => from(k.stored) <= now).sort((a, b) => from(b.stored) - from(a.stored) || rank(b.stored) - rank(a.stored) || b.stored.created_at - a.stored.created_at)[0]
}

function parseRecord(raw: Buffer): StoredKey[] {
  let list: unknown
  try {
    list = JSON.parse(raw.toString('utf8'))
  } catch {
    throw unavailable('record is not JSON')
  }
  if (!Array.isArray(list)) throw unavailable('record is not a list')
  for (const k of list as Partial<StoredKey>[]) {
    const ok = typeof k?.kid === 'string' && k.jwk?.kty === 'OKP' && k.jwk.crv === 'Ed25519' && typeof k.jwk.x === 'string' && typeof k.jwk.d === 'string' &&
      typeof k.created_at === 'number' && (k.state === 'active' || (k.state === 'retiring' && typeof k.retire_at === 'number')) &&
      (k.activate_at === undefined || typeof k.activate_at === 'number')
    if (!ok) throw unavailable('record has a malformed key')
  }
  return list as StoredKey[]
}

/** Fails closed: a request that needs an assertion is never sent without one. */
function unavailable(why: string): KeyvaletError {
  return new KeyvaletError('credential_unavailable', { message: 'The signed assertion for this connector could not be made.', detail: { secret: ASSERTION_KEYS_SECRET, why } })
}
