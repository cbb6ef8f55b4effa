import type { ProxyStats } from '../proxy/proxy.ts'
import type { SessionRepo } from '../store/store.ts'
import { VAULT_OPERATIONS, type Vault } from '../vault/vault.ts'
import { processMetrics } from './process.ts'
import { type Counter, type Histogram, Registry } from './registry.ts'
import { RequestMetrics } from './request-metrics.ts'

/** Seconds; an audit batch commits in well under a millisecond without fsync, a few with it. */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]

/** Seconds a parked request waits for a person: from moments to the longest approval timeout (1 h). */
const APPROVAL_WAIT_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600]

/** How a parked request's wait ends (the decisions counter's and the wait histogram's `outcome`). */
export const APPROVAL_OUTCOMES = ['approved', 'denied', 'expired', 'cancelled'] as const
export type ApprovalOutcome = (typeof APPROVAL_OUTCOMES)[number]

/** Counting the live sessions reads every session row: done at most this often. */
const SESSIONS_EVERY_MS = 30_000

/** What the scrape reads, once keyvalet's parts exist. */
export interface MetricParts {
  readonly proxy: { stats(): ProxyStats }
  readonly vault: Pick<Vault, 'operations'>
  readonly audit: { readonly pending: number }
  readonly sessions: Pick<SessionRepo, 'list'>
  /** Requests parked for a person's yes on this instance (approvals/approvals.ts). */
  readonly approvals?: { readonly waiting: number }
  readonly clock?: () => number
}

/**
 * Every metric keyvalet exposes, in one registry. The request metrics are fed per request by the
 * Recorder (`requests`, an observer); the audit writer reports each commit (`auditCommitted`);
 * config reloads are counted by whoever reloads (`configReloads`); everything else is read from
 * the parts when scraped (`watch`).
 */
export class KeyvaletMetrics {
  readonly registry = new Registry()
  readonly requests: RequestMetrics
  /** Reloads of the configuration, by result: increment one per reload attempt. */
  readonly configReloads: { readonly succeeded: Counter; readonly failed: Counter }
  /** Pushed policies refused because they were not made by a holder of the master key (config/push-mac.ts). */
  readonly pushesRefused: Counter
  readonly #commits: Histogram
  readonly #approvalDecisions: ReadonlyMap<ApprovalOutcome, Counter>
  readonly #approvalWaits: ReadonlyMap<ApprovalOutcome, Histogram>
  readonly #stopProcess: () => void

  constructor() {
    const r = this.registry
    this.requests = new RequestMetrics(r)
    this.#commits = r.histogram('keyvalet_audit_commit_duration_seconds', 'Audit batches, from being handed to the audit engine to their commit.', COMMIT_BUCKETS).labels()
    const reloads = r.counter('keyvalet_config_reloads_total', 'Configuration reloads, by result (succeeded: in force; failed: the previous configuration stayed).', ['result'])
    this.configReloads = { succeeded: reloads.labels('succeeded'), failed: reloads.labels('failed') }
    this.pushesRefused = r.counter('keyvalet_config_pushes_refused_total', 'Pushed policies this instance refused: their MAC or digest did not verify under the master key (written to the store by someone without it).', []).labels()
    const decisions = r.counter('keyvalet_approval_decisions_total', 'Requests parked for approval on this instance, by how their wait ended (approved, denied, expired: no decision in time, cancelled: the client left or shutdown).', ['outcome'])
    const waits = r.histogram('keyvalet_approval_wait_seconds', 'How long requests parked on this instance waited for a person, by how the wait ended.', APPROVAL_WAIT_BUCKETS, ['outcome'])
    this.#approvalDecisions = new Map(APPROVAL_OUTCOMES.map((o) => [o, decisions.labels(o)]))
    this.#approvalWaits = new Map(APPROVAL_OUTCOMES.map((o) => [o, waits.labels(o)]))
    this.#stopProcess = processMetrics(r)
  }

  /** For the audit writer's onCommit. */
  readonly auditCommitted = (seconds: number): void => this.#commits.observe(seconds)

  /** For Approvals' onSettled: one parked request's wait is over. */
  readonly approvalSettled = (outcome: ApprovalOutcome, waitedMs: number): void => {
    this.#approvalDecisions.get(outcome)?.inc()
    this.#approvalWaits.get(outcome)?.observe(waitedMs / 1000)
  }

  /** Reads these parts at each scrape. Call once, when they exist. */
  watch(parts: MetricParts): void {
    const r = this.registry
    const clock = parts.clock ?? Date.now
    const connections = r.gauge('keyvalet_open_connections', 'Client connections open, by listener.', ['listener'])
    const gatewayConnections = connections.labels('gateway')
    const forwardConnections = connections.labels('forward')
    const inFlight = r.gauge('keyvalet_in_flight', 'Requests, WebSockets and pass-through tunnels in flight.').labels()
    const tunnels = r.gauge('keyvalet_open_tunnels', 'CONNECT tunnels open, by kind (passthrough: not intercepted; intercepted: TLS terminated by keyvalet).', ['kind'])
    const passthrough = tunnels.labels('passthrough')
    const intercepted = tunnels.labels('intercepted')
    const leaves = r.counter('keyvalet_leaf_certificates_minted_total', 'Leaf certificates minted for intercepted hosts (first use and renewals).').labels()
    const tokenFetches = r.counter('keyvalet_token_fetches_total', 'Calls to token endpoints by credential source kind and result (ok: answered 2xx).', ['source', 'result'])
    const vaultOps = r.counter('keyvalet_vault_operations_total', 'Vault operations by kind and result (a secret that open asked for and is missing fails).', ['operation', 'result'])
    const vaultSeries = VAULT_OPERATIONS.map((op) => ({ op, ok: vaultOps.labels(op, 'ok'), failed: vaultOps.labels(op, 'failed') }))
    const queue = r.gauge('keyvalet_audit_queue_depth', 'Audit records appended and not committed yet.').labels()
    const sessions = r.gauge('keyvalet_active_sessions', `Sessions neither expired nor revoked (counted at most every ${SESSIONS_EVERY_MS / 1000} s).`).labels()
    const parked = r.gauge('keyvalet_approvals_pending', "Requests parked on this instance waiting for a person's yes.").labels()
    let sessionsAt = Number.NEGATIVE_INFINITY

    r.onCollect(() => {
      const stats = parts.proxy.stats()
      gatewayConnections.set(stats.connections.gateway)
      forwardConnections.set(stats.connections.forward)
      inFlight.set(stats.inFlight)
      passthrough.set(stats.tunnels.passthrough)
      intercepted.set(stats.tunnels.intercepted)
      leaves.value = stats.leavesMinted
      // Source kinds are the registry's few (oauth_client, oauth_user, github_app): a bounded set.
      for (const [source, counts] of stats.tokenFetches) {
        tokenFetches.labels(source, 'ok').value = counts.ok
        tokenFetches.labels(source, 'failed').value = counts.failed
      }
      for (const { op, ok, failed } of vaultSeries) {
        ok.value = parts.vault.operations[op].ok
        failed.value = parts.vault.operations[op].failed
      }
      queue.set(parts.audit.pending)
      parked.set(parts.approvals?.waiting ?? 0)
    })
    r.onCollect(async () => {
      const now = clock()
      if (now - sessionsAt < SESSIONS_EVERY_MS) return
      sessionsAt = now
      const all = await parts.sessions.list()
      sessions.set(all.filter((s) => s.revokedAt === undefined && s.expiresAt > now).length)
    })
  }

  expose(): Promise<string> {
    return this.registry.expose()
  }

  close(): void {
    this.#stopProcess()
  }
}
