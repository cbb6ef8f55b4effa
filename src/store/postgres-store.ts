import type { PostgresLocation } from './location.ts'
import { postgresAdminTokens } from './postgres/admin-tokens.ts'
import { postgresApprovals } from './postgres/approvals.ts'
import { postgresAudit } from './postgres/audit.ts'
import { connect, type Sql, unreachable } from './postgres/connect.ts'
import { postgresCounters } from './postgres/counters.ts'
import { migrate } from './postgres/migrations.ts'
import { postgresSecrets } from './postgres/secrets.ts'
import { postgresSessions } from './postgres/sessions.ts'
import type { AdminTokenRepo, ApprovalRepo, AuditRepo, CounterRepo, SecretRepo, SessionRepo, Store } from './store.ts'

/**
 * The Store on a PostgreSQL server, for several keyvalet instances sharing one state. Each repo is
 * its own module in postgres/ (its statements beside its methods); this opens a pool, brings the
 * schema up to date (postgres/migrations.ts: once, under a lock, whichever instance comes first)
 * and composes the repos. Every read goes to the server: nothing is cached here.
 */
export class PostgresStore implements Store {
  readonly sessions: SessionRepo
  readonly secrets: SecretRepo
  readonly audit: AuditRepo
  readonly counters: CounterRepo
  readonly adminTokens: AdminTokenRepo
  readonly approvals: ApprovalRepo
  readonly #sql: Sql

  static async open(location: PostgresLocation, opts: { readonly max?: number } = {}): Promise<PostgresStore> {
    const sql = connect(location, opts)
    try {
      await migrate(sql)
    } catch (err) {
      await sql.end({ timeout: 1 })
      throw unreachable(err, location)
    }
    return new PostgresStore(sql)
  }

  private constructor(sql: Sql) {
    this.#sql = sql
    this.sessions = postgresSessions(sql)
    this.secrets = postgresSecrets(sql)
    this.audit = postgresAudit(sql)
    this.counters = postgresCounters(sql)
    this.adminTokens = postgresAdminTokens(sql)
    this.approvals = postgresApprovals(sql)
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 })
  }
}
