/** An admin token: who may call the admin API, in which role, until when. */

/**
 * `admin`: everything, including secrets and admin tokens. `operator`: sessions (and approvals),
 * read config, explain. `auditor`: read audit, config and metrics. `approver`: list and decide
 * approvals, nothing else (a person who says yes or no, but may not mint or revoke).
 */
export const ADMIN_ROLES = ['admin', 'operator', 'auditor', 'approver'] as const
export type AdminRole = (typeof ADMIN_ROLES)[number]

export interface AdminToken {
  /** Public id (`kat_…`), safe to print and to put in audit records. Never the token. */
  readonly id: string
  /** What the token is for (e.g. orchestrator), shown in listings and audit records. */
  readonly name: string
  readonly role: AdminRole
  /** Epoch milliseconds. */
  readonly createdAt: number
  /** Undefined: it does not expire (until revoked). */
  readonly expiresAt: number | undefined
  readonly revokedAt: number | undefined
}

export interface StoredAdminToken extends AdminToken {
  /** SHA-256 of the token; the token itself is never stored. */
  readonly digest: Buffer
}
