import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { KeyvaletError, OperatorError } from '../errors.ts'
import { ADMIN_ROLES, type AdminRole, type AdminToken, type StoredAdminToken } from '../model/admin-token.ts'
import type { AdminTokenRepo } from '../store/store.ts'
import type { Actor } from './route.ts'

/**
 * Admin tokens: `kva_` + 43 base64url characters (32 random bytes). The prefix lets secret
 * scanners recognise a leaked token. Only SHA-256 of the whole token is stored: with 256 random
 * bits a stolen digest cannot be turned back into a token (no dictionary, no brute force), so a
 * key for the digest would add nothing but a dependency on the master key; a plain digest also
 * reads the same in every store and survives a master-key rotation.
 */
export const ADMIN_TOKEN_PREFIX = 'kva_'
const WELL_FORMED = /^kva_[A-Za-z0-9_-]{43}$/
/** Visible ASCII only: names land in audit records and listings. */
const NAME = /^[\x21-\x7e]{1,64}$/

/** SHA-256 of `candidate` when it has the shape of an admin token, else undefined. */
export function digestAdminToken(candidate: string): Buffer | undefined {
  if (!WELL_FORMED.test(candidate)) return undefined
  return createHash('sha256').update(candidate, 'utf8').digest()
}

/** Mint, list, revoke and authenticate admin tokens. Every authenticate reads the store: a revocation counts at once. */
export class AdminTokens {
  readonly #repo: AdminTokenRepo
  readonly #clock: () => number

  constructor(repo: AdminTokenRepo, clock: () => number) {
    this.#repo = repo
    this.#clock = clock
  }

  /** A new token; `value` is returned once and never stored (only its digest). */
  async create(opts: { readonly name: string; readonly role: string; readonly ttlMs?: number }): Promise<{ token: AdminToken; value: string }> {
    if (!NAME.test(opts.name)) throw new OperatorError('invalid admin token name', 'a name is 1-64 visible ASCII characters, without spaces (e.g. orchestrator)')
    if (!(ADMIN_ROLES as readonly string[]).includes(opts.role)) throw new OperatorError(`unknown admin role ${JSON.stringify(opts.role)}`, `use one of: ${ADMIN_ROLES.join(', ')}`)
    if (opts.ttlMs !== undefined && (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs <= 0)) throw new OperatorError('an admin token needs a ttl longer than 0', 'e.g. --ttl 90d')
    const value = ADMIN_TOKEN_PREFIX + randomBytes(32).toString('base64url')
    const now = this.#clock()
    const stored: StoredAdminToken = {
      id: `kat_${randomBytes(8).toString('hex')}`,
      digest: digestAdminToken(value) as Buffer,
      name: opts.name,
      role: opts.role as AdminRole,
      createdAt: now,
      expiresAt: opts.ttlMs === undefined ? undefined : now + opts.ttlMs,
      revokedAt: undefined,
    }
    await this.#repo.insert(stored)
    const { digest: _digest, ...token } = stored
    return { token, value }
  }

  async list(): Promise<AdminToken[]> {
    return this.#repo.list()
  }

  /** Returns false when no such token exists; revoking again keeps the first revocation time. */
  async revoke(id: string): Promise<boolean> {
    return this.#repo.revoke(id, this.#clock())
  }

  /**
   * The caller behind `value`, or KeyvaletError: admin_token_invalid (malformed or unknown),
   * admin_token_revoked, admin_token_expired (now >= expiresAt).
   */
  async authenticate(value: string): Promise<Actor> {
    const digest = digestAdminToken(value)
    if (digest === undefined) throw new KeyvaletError('admin_token_invalid')
    const found = await this.#repo.findByDigest(digest)
    // Looked up by digest (an index); the constant-time compare makes acceptance depend on the
    // whole digest, whatever the store's lookup compares.
    if (found === undefined || !timingSafeEqual(found.digest, digest)) throw new KeyvaletError('admin_token_invalid')
    const detail = { admin_token: found.id }
    if (found.revokedAt !== undefined) throw new KeyvaletError('admin_token_revoked', { detail })
    if (found.expiresAt !== undefined && this.#clock() >= found.expiresAt) throw new KeyvaletError('admin_token_expired', { detail })
    return { tokenId: found.id, name: found.name, role: found.role }
  }
}
