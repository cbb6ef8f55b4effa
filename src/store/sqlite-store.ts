import { basename, dirname, join } from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { OperatorError } from '../errors.ts'
import type { Grant } from '../model/policy.ts'
import { openDatabaseFile, reportingDamage } from './sqlite-file.ts'
import type { AuditRepo, AuditRow, SecretRecord, SecretRepo, SessionRepo, Store } from './store.ts'
import type { Session, StoredSession } from '../model/session.ts'

/**
 * Schema migrations of keyvalet.db (sessions, secrets): MIGRATIONS[i] takes the database from user_version i to i + 1.
 * Append new entries; never edit a released one.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     key_hash BLOB NOT NULL UNIQUE,
     agent TEXT NOT NULL,
     user TEXT NOT NULL,
     workspace TEXT NOT NULL,
     task TEXT NOT NULL,
     grants TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     revoked_at INTEGER
   ) STRICT;
   CREATE TABLE secrets (
     name TEXT PRIMARY KEY,
     envelope BLOB NOT NULL,
     key_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;`,
]

/**
 * Schema migrations of the audit file. The audit log lives in a database of its own so that its
 * constant appends (by the audit writer thread) never disturb readers of sessions and secrets,
 * and so that it can be retained, shipped and backed up on its own terms.
 */
const AUDIT_MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit (
     seq INTEGER PRIMARY KEY,
     hash TEXT NOT NULL,
     line TEXT NOT NULL
   ) STRICT;
   -- Append-only at the SQL level. This guards against accidents (a stray UPDATE or DELETE), not
   -- against someone with write access to the file, who can drop the triggers: the keyed HMAC chain
   -- (audit/verify.ts) is what detects that.
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
   CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;`,
]

export const SCHEMA_VERSION = MIGRATIONS.length

/** Where the audit log of the database at `path` lives: `<name>-audit.db` beside it. */
export function auditPathFor(path: string): string {
  return path === ':memory:' ? ':memory:' : join(dirname(path), `${basename(path, '.db')}-audit.db`)
}

type Row = Record<string, SQLOutputValue>

/** The embedded default Store: two SQLite files (WAL) — state, and the audit log — safe for several processes at once. */
export class SqliteStore implements Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  readonly #db: DatabaseSync
  readonly #auditDb: DatabaseSync
  readonly #insertSession: StatementSync
  readonly #dataVersion: StatementSync
  /**
   * Sessions and secrets read on the request path, kept while nothing changed. SQLite's
   * data_version changes whenever another connection (the CLI, another keyvalet) committed, and
   * this connection's own writes clear the cache, so a read never returns stale state: a
   * revocation or a new secret takes effect on the very next request, as without the cache.
   * Misses are not kept (unknown keys would fill memory), and the size is bounded.
   */
  readonly #reads = new Map<string, StoredSession | SecretRecord>()
  #seenVersion = -1
  readonly #sessionByHash: StatementSync
  readonly #sessionById: StatementSync
  readonly #listSessions: StatementSync
  readonly #revokeSession: StatementSync
  readonly #putSecret: StatementSync
  readonly #getSecret: StatementSync
  readonly #listSecrets: StatementSync
  readonly #deleteSecret: StatementSync
  readonly #swapSecret: StatementSync
  readonly #lastAudit: StatementSync
  readonly #insertAudit: StatementSync
  readonly #readAudit: StatementSync

  /**
   * Opens (creating if needed) and migrates the database at `path` and its audit file
   * (auditPathFor). A commit is in the OS when it returns (WAL, synchronous=NORMAL: survives a
   * crash of the process); with `fsync` it is on disk (synchronous=FULL: survives a crash of the
   * machine, at the cost of a flush per commit).
   */
  static open(path: string, opts: { fsync?: boolean } = {}): SqliteStore {
    const db = openDatabaseFile(path, opts.fsync === true, MIGRATIONS)
    try {
      return new SqliteStore(db, openDatabaseFile(auditPathFor(path), opts.fsync === true, AUDIT_MIGRATIONS))
    } catch (err) {
      db.close()
      throw err
    }
  }

  private constructor(db: DatabaseSync, auditDb: DatabaseSync) {
    this.#db = db
    this.#auditDb = auditDb
    const sessionCols = 'id, key_hash, agent, user, workspace, task, grants, created_at, expires_at, revoked_at'
    this.#dataVersion = db.prepare('PRAGMA data_version')
    this.#insertSession = db.prepare(`INSERT INTO sessions (${sessionCols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.#sessionByHash = db.prepare(`SELECT ${sessionCols} FROM sessions WHERE key_hash = ?`)
    this.#sessionById = db.prepare(`SELECT ${sessionCols} FROM sessions WHERE id = ?`)
    this.#listSessions = db.prepare(`SELECT ${sessionCols} FROM sessions ORDER BY created_at, id`)
    this.#revokeSession = db.prepare('UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?')
    this.#putSecret = db.prepare(
      `INSERT INTO secrets (name, envelope, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET
         envelope = excluded.envelope, key_id = excluded.key_id, updated_at = excluded.updated_at`,
    )
    this.#getSecret = db.prepare('SELECT name, envelope, key_id, created_at, updated_at FROM secrets WHERE name = ?')
    this.#listSecrets = db.prepare('SELECT name, key_id, created_at, updated_at FROM secrets ORDER BY name')
    this.#deleteSecret = db.prepare('DELETE FROM secrets WHERE name = ?')
    this.#swapSecret = db.prepare('UPDATE secrets SET envelope = ?, key_id = ?, updated_at = ? WHERE name = ? AND envelope = ?')
    this.#lastAudit = auditDb.prepare('SELECT seq, hash, line FROM audit ORDER BY seq DESC LIMIT 1')
    this.#insertAudit = auditDb.prepare('INSERT INTO audit (seq, hash, line) VALUES (?, ?, ?)')
    this.#readAudit = auditDb.prepare('SELECT seq, hash, line FROM audit WHERE seq > ? ORDER BY seq LIMIT ?')
    this.sessions = reportingDamage(this.#sessionRepo(), db)
    this.secrets = reportingDamage(this.#secretRepo(), db)
    this.audit = reportingDamage(this.#auditRepo(), auditDb)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
    if (this.#auditDb.isOpen) this.#auditDb.close()
  }

  #sessionRepo(): SessionRepo {
    return {
      insert: async (s: StoredSession) => {
        const grants = JSON.stringify(s.grants.map((g) => ({ ...g, rules: g.rules ?? null })))
        this.#insertSession.run(
          s.id, s.keyHash, s.agent, s.user, s.workspace, s.task, grants,
          s.createdAt, s.expiresAt, s.revokedAt ?? null,
        )
        this.#reads.clear()
      },
      findByKeyHash: async (keyHash: Buffer) => {
        const key = `s${keyHash.toString('hex')}`
        const cached = this.#cached(key)
        if (cached !== undefined) return cached as StoredSession
        const row = this.#sessionByHash.get(keyHash)
        return row === undefined ? undefined : this.#keep(key, toStoredSession(row))
      },
      get: async (id: string) => {
        const row = this.#sessionById.get(id)
        return row === undefined ? undefined : toSession(row)
      },
      list: async () => this.#listSessions.all().map(toSession),
      revoke: async (id: string, at: number) => {
        const changed = this.#revokeSession.run(at, id).changes > 0
        this.#reads.clear()
        return changed
      },
    }
  }

  #secretRepo(): SecretRepo {
    return {
      put: async (r: SecretRecord) => {
        this.#putSecret.run(r.name, r.envelope, r.keyId, r.createdAt, r.updatedAt)
        this.#reads.clear()
      },
      get: async (name: string) => {
        const key = `k${name}`
        const cached = this.#cached(key)
        if (cached !== undefined) return cached as SecretRecord
        const row = this.#getSecret.get(name)
        return row === undefined ? undefined : this.#keep(key, { ...toSecretMeta(row), envelope: blob(row.envelope) })
      },
      list: async () => this.#listSecrets.all().map(toSecretMeta),
      delete: async (name: string) => {
        const changed = this.#deleteSecret.run(name).changes > 0
        this.#reads.clear()
        return changed
      },
      swap: async (name: string, expected: Buffer, r: SecretRecord) => {
        const changed = this.#swapSecret.run(r.envelope, r.keyId, r.updatedAt, name, expected).changes > 0
        this.#reads.clear()
        return changed
      },
    }
  }

  /** A kept read, if nothing was committed since by anyone. */
  #cached(key: string): StoredSession | SecretRecord | undefined {
    const version = Number(this.#dataVersion.get()?.data_version)
    if (version !== this.#seenVersion) {
      this.#reads.clear()
      this.#seenVersion = version
    }
    return this.#reads.get(key)
  }

  #keep<T extends StoredSession | SecretRecord>(key: string, value: T): T {
    if (this.#reads.size >= 10_000) this.#reads.clear()
    this.#reads.set(key, value)
    return value
  }

  #appendRows(build: (last: AuditRow | undefined) => AuditRow[]): AuditRow[] {
    // IMMEDIATE takes the write lock before reading the last row, so a second process waits
    // (busy_timeout) instead of building on the same predecessor and forking the chain.
    this.#auditDb.exec('BEGIN IMMEDIATE')
    try {
      const lastRow = this.#lastAudit.get()
      let expected = (lastRow === undefined ? 0 : toAuditRow(lastRow).seq) + 1
      const rows = build(lastRow === undefined ? undefined : toAuditRow(lastRow))
      for (const row of rows) {
        if (row.seq !== expected) throw new OperatorError(`audit append out of order: expected seq ${expected}, got ${row.seq}`)
        this.#insertAudit.run(row.seq, row.hash, row.line)
        expected++
      }
      this.#auditDb.exec('COMMIT')
      return rows.map((row) => ({ seq: row.seq, hash: row.hash, line: row.line }))
    } catch (err) {
      if (this.#auditDb.isTransaction) this.#auditDb.exec('ROLLBACK')
      throw err
    }
  }

  #auditRepo(): AuditRepo {
    return {
      append: async (build) => {
        const [row] = this.#appendRows((last) => [build(last)])
        if (row === undefined) throw new Error('audit append built no row')
        return row
      },
      appendMany: async (build) => this.#appendRows(build),
      read: async (afterSeq: number, limit: number) => this.#readAudit.all(afterSeq, limit).map(toAuditRow),
      last: async () => {
        const row = this.#lastAudit.get()
        return row === undefined ? undefined : toAuditRow(row)
      },
    }
  }
}

function blob(v: SQLOutputValue | undefined): Buffer {
  if (!(v instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return Buffer.from(v)
}

function toSession(row: Row): Session {
  const grants = (JSON.parse(String(row.grants)) as { rules: string[] | null }[]).map(
    (g) => ({ ...g, rules: g.rules ?? undefined }) as unknown as Grant,
  )
  return {
    id: String(row.id),
    agent: String(row.agent),
    user: String(row.user),
    workspace: String(row.workspace),
    task: String(row.task),
    grants,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
  }
}

function toStoredSession(row: Row): StoredSession {
  return { ...toSession(row), keyHash: blob(row.key_hash) }
}

function toSecretMeta(row: Row): Omit<SecretRecord, 'envelope'> {
  return {
    name: String(row.name),
    keyId: String(row.key_id),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  }
}

function toAuditRow(row: Row): AuditRow {
  return { seq: Number(row.seq), hash: String(row.hash), line: String(row.line) }
}
