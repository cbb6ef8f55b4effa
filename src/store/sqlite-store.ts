import { basename, dirname, join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { openDatabaseFile, reportingDamage, yieldingWhenBusy } from './sqlite-file.ts'
import { sqliteAdminTokens } from './sqlite/admin-tokens.ts'
import { sqliteApprovals } from './sqlite/approvals.ts'
import { sqliteApprovalSignals } from './sqlite/approval-signals.ts'
import type { ApprovalSignals } from './approval-signals.ts'
import { sqliteAudit } from './sqlite/audit.ts'
import { checkpointer } from './sqlite/checkpointer.ts'
import { sqliteCounters } from './sqlite/counters.ts'
import { FreshReads } from './sqlite/fresh-reads.ts'
import { sqliteInstances } from './sqlite/instances.ts'
import { sqliteLocks } from './sqlite/locks.ts'
import { AUDIT_MIGRATIONS, MIGRATIONS } from './sqlite/migrations.ts'
import { sqliteSecrets } from './sqlite/secrets.ts'
import { sqliteSessions } from './sqlite/sessions.ts'
import { sqlitePushedConfigs } from './sqlite/pushed-configs.ts'
import type { PushedConfigRepo } from './pushed-config-repo.ts'
import type { AdminTokenRepo, ApprovalRepo, AuditRepo, CounterRepo, InstanceRepo, LockRepo, SecretRepo, SessionRepo, Store } from './store.ts'

export const SCHEMA_VERSION = MIGRATIONS.length

/** Where the audit log of the database at `path` lives: `<name>-audit.db` beside it. */
export function auditPathFor(path: string): string {
  return path === ':memory:' ? ':memory:' : join(dirname(path), `${basename(path, '.db')}-audit.db`)
}

/**
 * The embedded default Store: two SQLite files (WAL) — state, and the audit log — safe for several
 * processes at once. Each repo is its own module in sqlite/ (its statements beside its methods);
 * this only opens the files and composes them.
 */
export class SqliteStore implements Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  readonly counters: CounterRepo
  readonly adminTokens: AdminTokenRepo
  readonly approvals: ApprovalRepo
  readonly approvalSignals: ApprovalSignals
  readonly locks: LockRepo
  readonly instances: InstanceRepo
  readonly pushedConfigs: PushedConfigRepo
  readonly #db: DatabaseSync
  readonly #auditDb: DatabaseSync
  /** Ends this store's part in the background checkpoints, before its connections close. */
  readonly #released: readonly (() => Promise<void>)[]

  /**
   * Opens (creating if needed) and migrates the database at `path` and its audit file
   * (auditPathFor). A commit is in the OS when it returns (WAL, synchronous=NORMAL: survives a
   * crash of the process); with `fsync` it is on disk (synchronous=FULL: survives a crash of the
   * machine, at the cost of a flush per commit). `auditYieldsWhenBusy`: for the audit engine,
   * which may run on the proxy's thread (yieldingWhenBusy). `backgroundCheckpoints`: both files'
   * WAL checkpoints run on the checkpoint thread, not inside this store's commits (checkpointer.ts).
   */
  static open(path: string, opts: { fsync?: boolean; auditYieldsWhenBusy?: boolean; backgroundCheckpoints?: boolean } = {}): SqliteStore {
    const db = openDatabaseFile(path, opts.fsync === true, MIGRATIONS)
    try {
      const auditDb = openDatabaseFile(auditPathFor(path), opts.fsync === true, AUDIT_MIGRATIONS)
      if (opts.auditYieldsWhenBusy === true) auditDb.exec('PRAGMA busy_timeout = 0')
      const released = opts.backgroundCheckpoints === true ? [checkpointer.register(db), checkpointer.register(auditDb)] : []
      return new SqliteStore(db, auditDb, opts.auditYieldsWhenBusy === true, released)
    } catch (err) {
      db.close()
      throw err
    }
  }

  /** `auditYieldsWhenBusy`: the audit file's connection waits for another's write lock without blocking the thread (yieldingWhenBusy). */
  private constructor(db: DatabaseSync, auditDb: DatabaseSync, auditYieldsWhenBusy: boolean, released: readonly (() => Promise<void>)[]) {
    this.#db = db
    this.#auditDb = auditDb
    this.#released = released
    const reads = new FreshReads(db)
    this.sessions = reportingDamage(sqliteSessions(db, reads), db)
    this.secrets = reportingDamage(sqliteSecrets(db, reads), db)
    const audit = sqliteAudit(auditDb)
    this.audit = reportingDamage(auditYieldsWhenBusy ? yieldingWhenBusy(audit) : audit, auditDb)
    this.counters = reportingDamage(sqliteCounters(db), db)
    this.adminTokens = reportingDamage(sqliteAdminTokens(db, reads), db)
    const signals = sqliteApprovalSignals(db.location() ?? ':memory:')
    this.approvalSignals = signals
    this.approvals = reportingDamage(sqliteApprovals(db, signals.tell), db)
    this.locks = sqliteLocks()
    this.instances = reportingDamage(sqliteInstances(db), db)
    this.pushedConfigs = reportingDamage(sqlitePushedConfigs(db), db)
  }

  async close(): Promise<void> {
    const letGo = this.#released.map((release) => release())
    if (this.#db.isOpen) this.#db.close()
    if (this.#auditDb.isOpen) this.#auditDb.close()
    // The checkpoint thread's own connections to the files are closed too when this resolves.
    await Promise.all(letGo)
  }
}
