/** A task's session: who runs it, what it may use, and for how long. */

import type { Grant } from './policy.ts'

export interface Session {
  /** Public id (`ses_…`), safe to print and to put in audit records. Never the key. */
  readonly id: string
  readonly agent: string
  readonly user: string
  readonly workspace: string
  readonly task: string
  readonly grants: readonly Grant[]
  /** Epoch milliseconds. */
  readonly createdAt: number
  readonly expiresAt: number
  readonly revokedAt: number | undefined
  /** The most requests the session may have forwarded, when it was given a budget of its own (src/budgets/). */
  readonly budget?: number | undefined
}

export interface StoredSession extends Session {
  /** SHA-256 of the task key; the key itself is never stored. */
  readonly keyHash: Buffer
}

/** Which sessions a listing or a bulk revocation is about: every given field must match. */
export interface SessionFilter {
  readonly agent?: string
  readonly user?: string
  readonly workspace?: string
  readonly task?: string
}
