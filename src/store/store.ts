import type { Session, StoredSession } from '../model/session.ts'

/**
 * The narrow persistence interface. The pipeline and the CLI depend on this only; SQLite is the
 * embedded default and PostgreSQL (postgres-store.ts) implements the same contract (test/contract/store.contract.ts).
 * Implementations never see plaintext secrets: the vault encrypts before `secrets.put`.
 */
export interface Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  close(): Promise<void>
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

export interface AuditRow {
  readonly seq: number
  /** The complete record as one canonical JSON line (it carries its own prev and hash). */
  readonly line: string
  readonly hash: string
}

export interface AuditRepo {
  /**
   * Atomically reads the last row and appends the row built from it, so that concurrent writers
   * (several processes on one database) can never fork the chain. Durable when it resolves.
   */
  append(build: (last: AuditRow | undefined) => AuditRow): Promise<AuditRow>
  /** The same for several rows in one transaction (group commit): rows must continue the chain in order. */
  appendMany(build: (last: AuditRow | undefined) => AuditRow[]): Promise<AuditRow[]>
  /** Rows in seq order, starting after `afterSeq`. */
  read(afterSeq: number, limit: number): Promise<AuditRow[]>
  last(): Promise<AuditRow | undefined>
}
