import { join } from 'node:path'
import { hostname } from 'node:os'
import { createAdminServer } from './admin/server.ts'
import { Approvals } from './approvals/approvals.ts'
import { CounterLeases } from './budgets/leases.ts'
import { deliver } from './approvals/webhook.ts'
import type { ThrottleOptions } from './admin/throttle.ts'
import { AdminTokens } from './admin/tokens.ts'
import { AuditWriter } from './audit/audit-writer.ts'
import { checkpointer } from './store/sqlite/checkpointer.ts'
import { startInstanceReports } from './config/instance-report.ts'
import { LiveConfig } from './config/reload.ts'
import { followPushes, startingConfig, type PushedFollowerOptions } from './config/pushed-follower.ts'
import type { Logger } from './log.ts'
import type { KeyvaletMetrics } from './metrics/keyvalet-metrics.ts'
import type { RequestObserver } from './proxy/observer.ts'
import { createProxy, type Proxy } from './proxy/proxy.ts'
import type { Runtime } from './runtime.ts'
import { KEY_FILE_POLL_MS } from './vault/rotation-guard.ts'

export interface ServeOptions {
  readonly log: Logger
  /** The clock the data plane and the admin API read (tests move it instead of sleeping). */
  readonly clock?: () => number
  /** Fed as requests, reloads and audit commits happen; undefined when metrics are off. */
  readonly metrics?: KeyvaletMetrics
  /** Told of every request outcome, after the metrics. */
  readonly observers?: readonly RequestObserver[]
  /** Starts the admin listener (listen.admin must be configured); absent: no admin listener. */
  readonly admin?: { readonly throttle?: ThrottleOptions }
}

/** How often an instance following pushes looks for one besides the store's signal: the whole propagation on SQLite, a backstop on PostgreSQL. */
const PUSH_POLL_MS = { sqlite: 250, postgres: 1000 } as const

/** A serving keyvalet: its listeners are up; `close` stops them in order and waits for the audit. */
export interface Serving {
  readonly proxy: Proxy
  readonly audit: AuditWriter
  /** The configuration in force and its reloads. */
  readonly live: LiveConfig
  readonly adminTokens: AdminTokens
  readonly url: string
  readonly forwardUrl: string | undefined
  readonly caCertPem: string | undefined
  readonly adminUrl: string | undefined
  close(): Promise<void>
}

/**
 * Composition root of the serving process, shared by `keyvalet start` and the tests: the audit
 * writer, the data plane, live configuration and the admin listener, wired once. No logic here.
 * On a failure half-way, what was started is closed again before the error goes up.
 */
export async function serve(runtime: Runtime, opts: ServeOptions): Promise<Serving> {
  const { log, metrics } = opts
  const clock = opts.clock ?? Date.now
  const closers: (() => Promise<void>)[] = []
  const close = async (): Promise<void> => {
    for (const step of closers.splice(0).reverse()) await step()
  }
  try {
    // Closed last: the audit's final commits still count.
    if (metrics !== undefined) closers.push(async () => metrics.close())
    const following: PushedFollowerOptions | undefined = runtime.config.fleetPolicy === 'file' ? undefined : {
      repo: runtime.store.pushedConfigs, signals: runtime.store.pushedConfigSignals, master: () => runtime.masterKeys(), log,
      pollMs: PUSH_POLL_MS[runtime.storeLocation.kind], ...(metrics === undefined ? {} : { onRefused: () => metrics.pushesRefused.inc() }),
    }
    // The file, with the newest verified push over it when this instance follows pushes.
    const { config, overlay } = following === undefined ? { config: runtime.config, overlay: undefined } : await startingConfig(runtime.config, following)
    // Set once the proxy exists: until then the configuration in force is the one loaded.
    let live: LiveConfig | undefined
    const audit = await AuditWriter.start({
      store: runtime.storeLocation, key: await runtime.openAuditKey(), reserveBytes: config.auditReserveBytes, log,
      ...(config.auditThread === undefined ? {} : { thread: config.auditThread }),
      configVersion: () => live?.current.version ?? config.version, ...(metrics === undefined ? {} : { onCommit: metrics.auditCommitted }),
      ...(runtime.storeLocation.kind === 'postgres' ? { spool: { dir: join(config.dataDir, 'audit-spool'), maxBytes: config.auditSpoolBytes, fsync: config.auditFsync } } : {}),
    })
    closers.push(() => audit.close())
    const checkpointProblems = checkpointer.onProblem((problem) => log.warn('SQLite background checkpoint', { problem }))
    closers.push(async () => checkpointProblems())
    log.info('audit chain of this instance', { instance: audit.instance, host: hostname(), pid: process.pid })
    metrics?.requests.connectors(config.policy.connectors.keys())
    const observers = [...(metrics === undefined ? [] : [metrics.requests]), ...(opts.observers ?? [])]
    const webhook = config.approvalWebhook
    const hook = webhook === undefined ? undefined : { options: webhook, openSecret: (name: string) => runtime.vault.open(name), log, clock }
    const approvals = new Approvals({
      repo: runtime.store.approvals, signals: runtime.store.approvalSignals, clock, log,
      onSettled: (approval, waitedMs) => {
        metrics?.approvalSettled(approval.state, waitedMs)
        if (hook !== undefined) void deliver(hook, approval, 'approval.decided')
      },
      ...(hook === undefined ? {} : { onPending: (approval) => void deliver(hook, approval) }),
    })
    closers.push(async () => approvals.close())
    // Closed after the proxy: what no request will spend any more goes back to the store.
    const leases = new CounterLeases(runtime.store.counters, clock)
    closers.push(() => leases.close())
    const proxy = createProxy({ config, sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log, clock, observers, approvals, leases })
    metrics?.watch({ proxy, vault: runtime.vault, audit, sessions: runtime.store.sessions, approvals, clock })
    const reloads = new LiveConfig(config, { apply: (next) => proxy.apply(next), log, ...(overlay === undefined ? {} : { overlay }) })
    live = reloads
    if (metrics !== undefined) {
      reloads.onReload((result) => {
        if (result.result === 'failed') metrics.configReloads.failed.inc()
        else metrics.configReloads.succeeded.inc()
        if (result.result === 'applied') metrics.requests.connectors(reloads.current.policy.connectors.keys())
      })
    }
    const address = await proxy.listen()
    closers.push(() => proxy.close())
    // Which configuration this instance serves under, for GET /v1/fleet: said at start and after each reload.
    const reports = startInstanceReports({ repo: runtime.store.instances, instance: audit.instance, configVersion: () => reloads.current.version, pushedSeq: () => reloads.current.pushed?.seq, keyIds: () => runtime.vault.keyIds, clock, log })
    reloads.onReload((result) => { if (result.result !== 'failed') void reports.now() })
    closers.push(() => reports.stop())
    // Serving only once listed: GET /v1/fleet and the master-key rotation guard (vault/rotation-guard.ts)
    // know an instance by its report, and one started but not yet reported would be missed.
    await reports.started
    if (following !== undefined) {
      const follower = followPushes(reloads, following)
      closers.push(async () => follower.close())
    }
    // And which master keys it holds, at once when they change: a key staged in its key file is
    // held and reported within KEY_FILE_POLL_MS, which `vault rotate-master-key` waits for.
    runtime.vault.onKeysChanged(() => void reports.now())
    const keyFileWatch = setInterval(() => runtime.vault.followKeyFile(), KEY_FILE_POLL_MS)
    keyFileWatch.unref()
    closers.push(async () => clearInterval(keyFileWatch))
    const adminTokens = new AdminTokens(runtime.store.adminTokens, clock)
    let adminUrl: string | undefined
    if (opts.admin !== undefined) {
      const admin = createAdminServer({
        config: () => reloads.current, reloadConfig: () => reloads.reload('admin'), openAuditKey: () => runtime.openAuditKey(),
        sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log, clock, adminTokens,
        listening: { gateway: address.url, forward: address.forwardUrl }, metrics, proxy, approvals, leases,
      }, opts.admin)
      closers.push(() => admin.close())
      adminUrl = (await admin.listen()).url
    }
    return { proxy, audit, live: reloads, adminTokens, url: address.url, forwardUrl: address.forwardUrl, caCertPem: address.caCertPem, adminUrl, close }
  } catch (err) {
    await close()
    throw err
  }
}
