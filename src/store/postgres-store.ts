import type { KeptReads, PostgresLocation } from './location.ts'
import { postgresAdminTokens } from './postgres/admin-tokens.ts'
import { postgresApprovals } from './postgres/approvals.ts'
import { postgresAudit } from './postgres/audit.ts'
import { type ChangeFeed, startChangeFeed } from './postgres/change-feed.ts'
import { connect, type Sql, unreachable } from './postgres/connect.ts'
import { reportingUnreachable } from './postgres/unreachable.ts'
import { postgresCounters } from './postgres/counters.ts'
import { postgresInstances } from './postgres/instances.ts'
import { LOCKS_APPLICATION_NAME, postgresLocks } from './postgres/locks.ts'
import { migrate } from './postgres/migrations.ts'
import { NotifiedReads } from './postgres/notified-reads.ts'
import type { ApprovalSignals } from './approval-signals.ts'
import { postgresSecrets } from './postgres/secrets.ts'
import { postgresSessions } from './postgres/sessions.ts'
import { postgresPushedConfigs } from './postgres/pushed-configs.ts'
import type { PushedConfigRepo } from './pushed-config-repo.ts'
import type { AdminTokenRepo, ApprovalRepo, AuditRepo, CounterRepo, InstanceRepo, LockRepo, SecretRepo, SessionRepo, Store } from './store.ts'

/** Locks held or waited for at once by one instance; more wait in the driver's queue. */
const LOCK_CONNECTIONS = 4

/**
 * The Store on a PostgreSQL server, for several keyvalet instances sharing one state. Each repo is
 * its own module in postgres/ (its statements beside its methods); this opens a pool, brings the
 * schema up to date (postgres/migrations.ts: once, under a lock, whichever instance comes first)
 * and composes the repos, each failure to reach the server as 503 store_unavailable
 * (postgres/unreachable.ts). With `keptReads` (a serving instance), request-path reads are kept
 * exact by the database's change notifications (postgres/notified-reads.ts, change-feed.ts);
 * without (the CLI), every read goes to the server.
 */
/** The change notification of an approval's state (MIGRATIONS: approvals_notify), before its id. */
const APPROVAL_CHANGE = 'approval:'
/** The change notification of a pushed policy (MIGRATIONS: pushed_configs_notify), before its sequence number. */
const CONFIG_CHANGE = 'config:'

export class PostgresStore implements Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  readonly counters: CounterRepo
  readonly adminTokens: AdminTokenRepo
  readonly approvals: ApprovalRepo
  /** Heard through the change feed (postgres/change-feed.ts): only on a serving instance (`keptReads`). */
  readonly approvalSignals: ApprovalSignals
  readonly locks: LockRepo
  readonly instances: InstanceRepo
  readonly pushedConfigs: PushedConfigRepo
  /** Heard through the change feed: a new push, or a (re)started LISTEN (one may have gone unheard). */
  readonly pushedConfigSignals: (listener: () => void) => () => void
  /** The request-path reads, for readiness and tests (kept only while `trusted`). */
  readonly reads: NotifiedReads
  readonly #sql: Sql
  /** Connections that hold or wait for a lock (opened when first needed). */
  readonly #lockSql: Sql
  #feed: ChangeFeed | undefined

  static async open(location: PostgresLocation, opts: { readonly max?: number; readonly keptReads?: KeptReads } = {}): Promise<PostgresStore> {
    const sql = connect(location, opts)
    const lockSql = connect(location, { max: LOCK_CONNECTIONS, applicationName: LOCKS_APPLICATION_NAME })
    const store = new PostgresStore(sql, lockSql, opts.keptReads ?? { resyncMs: 1000, graceMs: 0 })
    try {
      await migrate(sql)
      if (opts.keptReads !== undefined) store.#feed = await startChangeFeed(location, sql, store.reads, opts.keptReads.resyncMs)
    } catch (err) {
      await sql.end({ timeout: 1 })
      await lockSql.end({ timeout: 1 })
      throw unreachable(err, location)
    }
    return store
  }

  private constructor(sql: Sql, lockSql: Sql, kept: KeptReads) {
    this.#sql = sql
    this.#lockSql = lockSql
    this.reads = new NotifiedReads(kept)
    this.sessions = reportingUnreachable(postgresSessions(sql, this.reads))
    this.secrets = reportingUnreachable(postgresSecrets(sql, this.reads))
    this.audit = reportingUnreachable(postgresAudit(sql))
    this.counters = reportingUnreachable(postgresCounters(sql))
    this.adminTokens = reportingUnreachable(postgresAdminTokens(sql, this.reads))
    this.locks = reportingUnreachable(postgresLocks(lockSql, this.reads))
    this.approvals = reportingUnreachable(postgresApprovals(sql))
    this.instances = reportingUnreachable(postgresInstances(sql))
    this.pushedConfigs = reportingUnreachable(postgresPushedConfigs(sql))
    const pushedConfigSignals = (listener: () => void): (() => void) => this.reads.onChange((payload) => {
      if (payload === undefined || payload.startsWith(CONFIG_CHANGE)) listener()
    })
    this.pushedConfigSignals = pushedConfigSignals
    this.approvalSignals = {
      watch: (listener) => this.reads.onChange((payload) => {
        if (payload === undefined || payload === 'all:approvals') listener(undefined)
        else if (payload.startsWith(APPROVAL_CHANGE)) listener(payload.slice(APPROVAL_CHANGE.length))
      }),
    }
  }

  async close(): Promise<void> {
    await this.#feed?.close()
    await this.#lockSql.end({ timeout: 5 })
    await this.#sql.end({ timeout: 5 })
  }
}
