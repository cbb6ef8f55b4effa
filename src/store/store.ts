import type { ApprovalSignals } from './approval-signals.ts'
import type { AdminToken, StoredAdminToken } from '../model/admin-token.ts'
import type { Approval, PendingApproval, Verdict } from '../model/approval.ts'
import type { Session, SessionFilter, StoredSession } from '../model/session.ts'
import type { AuditRepo } from './audit-repo.ts'
import type { PushedConfigRepo } from './pushed-config-repo.ts'
export type { PushedConfig, PushedConfigRepo } from './pushed-config-repo.ts'
export type { AuditRow, NewAuditRow, AuditChain, AuditFacets, AuditFilter, AuditPage, AuditRepo, AuditWindow, AuditSummary, AuditCount } from './audit-repo.ts'

/**
 * The narrow persistence interface. The pipeline and the CLI depend on this only; SQLite is the
 * embedded default and PostgreSQL (postgres-store.ts) implements the same contract (test/contract/store.contract.ts).
 * Implementations never see plaintext secrets: the vault encrypts before `secrets.put`.
 */
export interface Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  readonly counters: CounterRepo
  readonly adminTokens: AdminTokenRepo
  readonly approvals: ApprovalRepo
  /** Approval state changes as this store hears of them (approval-signals.ts); without it, parked requests learn of decisions taken elsewhere by polling only. */
  readonly approvalSignals?: ApprovalSignals
  readonly locks: LockRepo
  readonly instances: InstanceRepo
  readonly pushedConfigs: PushedConfigRepo
  /**
   * Calls `listener` when a push may have been stored by anyone (a notification, or one that may
   * have gone unheard); returns the function that stops it. Absent where the store cannot tell
   * (SQLite across processes): a follower then looks at `pushedConfigs.latestSeq` on a short period.
   */
  readonly pushedConfigSignals?: (listener: () => void) => () => void
  close(): Promise<void>
}

/**
 * What one serving keyvalet process says about itself (its audit chain's instance id, where it
 * runs and the configuration version in force), so that an operator sees which instances of a
 * fleet run which configuration (GET /v1/fleet). Written by the instance itself, at start, after
 * each reload and every INSTANCE_REPORT_MS; never read on the request path.
 */
export interface InstanceReport {
  readonly instance: string
  readonly host: string
  readonly pid: number
  readonly configVersion: string
  /** The pushed policy's sequence number in force (docs/deploy.md, "Configuration in a fleet"); undefined: none (the file alone). */
  readonly pushedSeq: number | undefined
  /**
   * Ids of the master keys this instance's vault holds (MasterKey.keyId, public fingerprints;
   * never key material), the one it seals under first. Empty from a keyvalet that did not report them.
   */
  readonly keyIds: readonly string[]
  readonly startedAt: number
  /** When the instance last said this (epoch ms, its clock). */
  readonly seenAt: number
}

export interface InstanceRepo {
  /** Records the instance's report, replacing its previous one. */
  report(report: InstanceReport): Promise<void>
  /** Every instance whose report is at or after `seenSince`, ordered by start, then id. */
  list(seenSince: number): Promise<InstanceReport[]>
  /** Removes an instance's report (it stopped); true when there was one. */
  remove(instance: string): Promise<boolean>
}

/**
 * Named locks for work that must happen once however many requests want it (a token refresh).
 * On PostgreSQL the lock holds across every instance on the server; on SQLite, across this
 * store's users in this process.
 */
export interface LockRepo {
  /**
   * Runs `work` while holding the lock `name`; other callers for the same name wait their turn.
   * Once it is held, reads see every write committed before (so the previous holder's result is
   * read, not fetched again). Returns what `work` returns; its failure is the caller's.
   */
  exclusive<T>(name: string, work: () => Promise<T>): Promise<T>
}

export interface SessionRepo {
  insert(session: StoredSession): Promise<void>
  findByKeyHash(keyHash: Buffer): Promise<StoredSession | undefined>
  get(id: string): Promise<Session | undefined>
  list(): Promise<Session[]>
  /** Every session with its key hash, for moving an installation to another store (db copy) only. */
  listStored(): Promise<StoredSession[]>
  /** Returns false when no such session exists. Revoking twice keeps the first time. */
  revoke(id: string, at: number): Promise<boolean>
  /**
   * One page of the sessions matching every field of `filter`, in (createdAt, id) order, starting
   * after the session `after` names (exclusive), at most `limit` of them.
   */
  page(filter: SessionFilter, after: SessionCursor | undefined, limit: number): Promise<Session[]>
  /**
   * Revokes at `at`, in one statement, every session matching `filter` that is not yet revoked
   * (expired ones too); returns their ids. `filter` names at least one field (never "all").
   */
  revokeMatching(filter: SessionFilter, at: number): Promise<string[]>
}

/** Where a page of sessions ends: the last session's createdAt and id. */
export interface SessionCursor {
  readonly createdAt: number
  readonly id: string
}

export interface AdminTokenRepo {
  /** Refuses a second token with the same id or digest. */
  insert(token: StoredAdminToken): Promise<void>
  /** The token whose SHA-256 digest this is, revoked or expired ones included; undefined if none. */
  findByDigest(digest: Buffer): Promise<StoredAdminToken | undefined>
  /** Every token in (createdAt, id) order, without digests. */
  list(): Promise<AdminToken[]>
  /** Every token with its digest, for moving an installation to another store (db copy) only. */
  listStored(): Promise<StoredAdminToken[]>
  /** Returns false when no such token exists. Revoking twice keeps the first time. */
  revoke(id: string, at: number): Promise<boolean>
}

/** An encrypted secret as stored; the envelope format belongs to vault/. */
export interface SecretRecord {
  readonly name: string
  readonly envelope: Buffer
  /** Fingerprint of the master key that wrapped the data key. */
  readonly keyId: string
  readonly createdAt: number
  readonly updatedAt: number
}

export interface SecretRepo {
  /** Inserts or replaces; keeps createdAt of an existing record. */
  put(record: SecretRecord): Promise<void>
  get(name: string): Promise<SecretRecord | undefined>
  /** Metadata only; implementations must not return envelopes here. */
  list(): Promise<Omit<SecretRecord, 'envelope'>[]>
  delete(name: string): Promise<boolean>
  /**
   * Replaces the record only if its envelope is still `expected` (compare-and-swap, for
   * re-wrapping under a new master key without losing a concurrent put). Keeps createdAt.
   */
  swap(name: string, expected: Buffer, record: SecretRecord): Promise<boolean>
}

export interface Spending {
  readonly key: string
  readonly amount: number
  readonly limit: number
  /** Epoch ms: a counter whose `expiresAt` is at or before `now` counts as 0. */
  readonly now: number
  readonly expiresAt: number
}

/**
 * Named counters shared by every keyvalet process on the store: what budgets and rate limits
 * spend from. A key names what it counts and, for a window, which one (`session:ses_…:requests`,
 * `rate:ses_…:1733500000`); the caller builds it. A counter is kept until `expiresAt` (epoch ms)
 * and may be purged after.
 */
export interface CounterRepo {
  /**
   * Adds `amount` to the counter if the total stays within `limit`, atomically across processes
   * (never a read then a write): true when it was added, false (and nothing added) when it would
   * go over. A counter that does not exist starts at 0. `expiresAt` only ever moves later. A
   * negative `amount` gives back what was spent (budgets do, when a later budget refuses the request).
   */
  spend(spending: Spending): Promise<boolean>
  /** The counter's total, 0 for one never spent from or expired. */
  used(key: string, now: number): Promise<number>
}

/**
 * Requests parked for a person's yes (src/approvals/), shared by every instance on the store: the
 * instance holding a request polls for its decision, which any instance may take. Exactly one
 * decision wins: every state change is a conditional update of a pending row.
 */
export interface ApprovalRepo {
  /** A new pending approval. */
  insert(pending: PendingApproval): Promise<void>
  /**
   * A new pending approval unless its session already has `max` pending and not expired at `now`:
   * true when it was inserted. Exact under concurrency across instances (one statement on
   * SQLite; on PostgreSQL under a transaction lock per session).
   */
  insertWithin(pending: PendingApproval, max: number, now: number): Promise<boolean>
  get(id: string): Promise<Approval | undefined>
  /** Pending approvals not expired at `now`, oldest first (then by id), at most `limit`. */
  pending(now: number, limit: number): Promise<Approval[]>
  /** Those of `ids` no longer pending. */
  settled(ids: readonly string[]): Promise<Approval[]>
  /** Takes the verdict if the approval is still pending and `verdict.at` is before its expiry: the decided approval, else undefined. */
  decide(id: string, verdict: Verdict): Promise<Approval | undefined>
  /** Ends a still pending approval as expired or cancelled at `at`; false when it was no longer pending. */
  close(id: string, state: 'expired' | 'cancelled', at: number): Promise<boolean>
  /** The latest approval of this session and digest whose approver let identical requests through until after `now`. */
  remembered(session: string, digest: string, now: number): Promise<Approval | undefined>
}
