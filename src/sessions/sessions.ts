import { randomBytes, timingSafeEqual } from 'node:crypto'
import { formatDuration } from '../duration.ts'
import { KeyvaletError, OperatorError } from '../errors.ts'
import type { Grant } from '../model/policy.ts'
import type { Session, StoredSession } from '../model/session.ts'
import type { SessionRepo } from '../store/store.ts'
import { hashTaskKey, mintTaskKey } from './task-key.ts'

/** The longest session unless the configuration says otherwise (sessions.max_ttl). */
export const MAX_TTL_MS = 30 * 24 * 60 * 60 * 1000
/** Visible ASCII only: identifiers land in audit records, logs and headers. */
const IDENTIFIER = /^[\x21-\x7e]{1,128}$/

export interface CreateSessionOptions {
  readonly agent: string
  readonly user: string
  readonly workspace: string
  /** Defaults to a random `tsk_…` id. */
  readonly task?: string
  readonly grants: readonly Grant[]
  /** Lifetime in milliseconds: > 0 and at most the longest session allowed (30 days by default). */
  readonly ttlMs: number
  /** The most requests the session may have forwarded (a whole number ≥ 1); none by default. */
  readonly budget?: number | undefined
}

/**
 * Task sessions: mint keys, authenticate them, revoke them. Every authenticate reads the store,
 * so a revocation takes effect on the very next request (no cache).
 */
export class Sessions {
  readonly #repo: SessionRepo
  readonly #clock: () => number
  readonly #maxTtlMs: number

  constructor(repo: SessionRepo, clock: () => number, opts: { readonly maxTtlMs?: number } = {}) {
    this.#repo = repo
    this.#clock = clock
    this.#maxTtlMs = opts.maxTtlMs ?? MAX_TTL_MS
  }

  /** Creates a session; `key` is returned once and never stored (only its hash). */
  async create(opts: CreateSessionOptions): Promise<{ session: Session; key: string }> {
    const task = opts.task ?? `tsk_${randomBytes(8).toString('hex')}`
    for (const [field, value] of [['agent', opts.agent], ['user', opts.user], ['workspace', opts.workspace], ['task', task]]) {
      validateIdentifier(field as string, value)
    }
    if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs <= 0) throw new OperatorError('a session needs a ttl longer than 0', 'e.g. --ttl 1h')
    if (opts.ttlMs > this.#maxTtlMs) {
      throw new OperatorError(
        `a ttl of ${formatDuration(opts.ttlMs)} is longer than a session may last here (${formatDuration(this.#maxTtlMs)}, sessions.max_ttl)`,
        'a task key should live as long as its task: give a shorter --ttl (or raise sessions.max_ttl, see docs/config.md)',
      )
    }
    if (!Array.isArray(opts.grants)) throw new OperatorError('session grants must be a list')
    if (opts.budget !== undefined && (!Number.isSafeInteger(opts.budget) || opts.budget < 1)) throw new OperatorError('a session budget is a whole number of requests, at least 1', 'e.g. --budget 100')
    const now = this.#clock()
    const { key, hash } = mintTaskKey()
    const stored: StoredSession = {
      id: `ses_${randomBytes(8).toString('hex')}`,
      keyHash: hash,
      agent: opts.agent,
      user: opts.user,
      workspace: opts.workspace,
      task,
      grants: opts.grants.map((g) => Object.freeze({ ...g })),
      createdAt: now,
      expiresAt: now + opts.ttlMs,
      revokedAt: undefined,
      ...(opts.budget === undefined ? {} : { budget: opts.budget }),
    }
    await this.#repo.insert(stored)
    return { session: publicSession(stored), key }
  }

  /**
   * The live session behind `key`, or KeyvaletError: task_key_malformed (not a well-formed key),
   * task_key_invalid (no such key), task_key_revoked, task_key_expired (now >= expiresAt).
   */
  async authenticate(key: string): Promise<Session> {
    const hash = hashTaskKey(key)
    if (hash === undefined) throw new KeyvaletError('task_key_malformed')
    const found = await this.#repo.findByKeyHash(hash)
    // The lookup is by hash (an index); the constant-time compare makes acceptance depend on the
    // full hash regardless of how the store matched it.
    if (found === undefined || found.keyHash.length !== hash.length || !timingSafeEqual(found.keyHash, hash)) {
      throw new KeyvaletError('task_key_invalid')
    }
    const detail = { session: found.id }
    if (found.revokedAt !== undefined) throw new KeyvaletError('task_key_revoked', { detail })
    if (this.#clock() >= found.expiresAt) throw new KeyvaletError('task_key_expired', { detail })
    return publicSession(found)
  }

  async list(): Promise<Session[]> {
    return this.#repo.list()
  }

  async get(id: string): Promise<Session | undefined> {
    return this.#repo.get(id)
  }

  /** Returns false when no such session exists; revoking again keeps the first revocation time. */
  async revoke(id: string): Promise<boolean> {
    return this.#repo.revoke(id, this.#clock())
  }
}

function validateIdentifier(field: string, value: unknown): void {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new OperatorError(
      `invalid session ${field}`,
      `the ${field} must be 1-128 visible ASCII characters, without spaces or control characters`,
    )
  }
}

function publicSession(s: StoredSession): Session {
  const { keyHash: _keyHash, ...rest } = s
  return rest
}
