/**
 * What admin routes may use. Each route module is a factory `(deps: AdminDeps) => AdminRoute[]`,
 * listed in routes/index.ts; add a field here when a module needs a part the others do not have.
 */
import type { Approvals } from '../approvals/approvals.ts'
import type { AuditWriter } from '../audit/audit-writer.ts'
import type { CounterLeases } from '../budgets/leases.ts'
import type { Config } from '../config/load.ts'
import type { ReloadResult } from '../config/reload.ts'
import type { Logger } from '../log.ts'
import type { KeyvaletMetrics } from '../metrics/keyvalet-metrics.ts'
import type { ProxyStats } from '../proxy/proxy.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Store } from '../store/store.ts'
import type { Vault } from '../vault/vault.ts'
import type { AdminTokens } from './tokens.ts'

export interface AdminDeps {
  /** The configuration in force now (it changes on reload: read it per call, never keep it). */
  config(): Config
  /** Reads the configuration file again and puts it in force, or keeps the one in force and says why (config/reload.ts). */
  reloadConfig(): Promise<ReloadResult>
  /** The HMAC key of the audit chain, for `audit verify`. */
  openAuditKey(): Promise<Buffer>
  readonly sessions: Sessions
  readonly vault: Vault
  readonly store: Store
  readonly audit: AuditWriter
  readonly log: Logger
  readonly clock: () => number
  /**
   * Where the data plane listens now (http://host:port), for the sandbox environment a new session
   * gets: the configured address with the port a `:0` listener was given.
   */
  readonly listening: { readonly gateway: string; readonly forward: string | undefined }
  /** Admin tokens: the server authenticates callers with them; the token routes manage them. */
  readonly adminTokens: AdminTokens
  /** Undefined when `metrics.enabled` is false. */
  readonly metrics: KeyvaletMetrics | undefined
  /** Requests waiting for a person's yes: the approval routes decide them. */
  readonly approvals: Approvals
  /** The data plane's listeners, for the readiness check. */
  readonly proxy: { stats(): ProxyStats }
  /** This instance's leases of budget counters: what a session has used is reported without the units leased here and not spent. */
  readonly leases?: CounterLeases
}
