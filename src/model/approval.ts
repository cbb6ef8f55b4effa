/** A request parked for a person's yes (src/approvals/): what an approver sees, and what was decided. */

/** What a rule (or a connector, for its rules of a severity) requires before a request goes: a person's yes. */
export interface ApprovalOptions {
  /** How long the request is held open before it is refused (approval_timeout), in milliseconds. */
  readonly timeoutMs: number
  /** A template over the JSON body (`{field.path}`), rendered for the approver; undefined: a bounded, redacted rendering of the body. */
  readonly summary: string | undefined
}

export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const
export type ApprovalState = (typeof APPROVAL_STATES)[number]

/** A parked request as the store keeps it. Never the credential, the task key or the body itself: its digest. */
export interface PendingApproval {
  /** `apr_` and 16 hex digits. */
  readonly id: string
  /** The audit record's request_id of the parked request. */
  readonly requestId: string
  readonly session: string
  readonly agent: string
  readonly user: string
  readonly workspace: string
  readonly task: string
  readonly connector: string
  readonly rule: string
  readonly method: string
  /** The upstream's host[:port]. */
  readonly host: string
  /** The path and query as they will be sent (query values included: they are part of what is approved). */
  readonly path: string
  readonly summary: string
  /** `sha256:` and hex, of the exact request that will be forwarded (approvals/digest.ts). */
  readonly digest: string
  /** Epoch ms. */
  readonly createdAt: number
  /** Epoch ms: no decision is taken at or after it. */
  readonly expiresAt: number
}

/** A parked request and what became of it. */
export interface Approval extends PendingApproval {
  readonly state: ApprovalState
  /** Epoch ms of the decision (or of its expiry or cancellation). */
  readonly decidedAt: number | undefined
  /** The admin token that decided, by id and name (never the token). */
  readonly approver: { readonly id: string; readonly name: string } | undefined
  /** The approver's reason (bounded, control characters stripped). */
  readonly reason: string | undefined
  /** Epoch ms: until then, an identical request (same session, same digest) passes without asking. */
  readonly rememberUntil: number | undefined
}

/** A person's decision on a pending approval. */
export interface Verdict {
  readonly state: 'approved' | 'denied'
  readonly approver: { readonly id: string; readonly name: string }
  readonly reason: string | undefined
  readonly at: number
  readonly rememberUntil: number | undefined
}
