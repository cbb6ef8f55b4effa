import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAdminServer } from '../../src/admin/server.ts'
import type { ThrottleOptions } from '../../src/admin/throttle.ts'
import { AdminTokens } from '../../src/admin/tokens.ts'
import type { AdminRole } from '../../src/model/admin-token.ts'
import { AuditWriter } from '../../src/audit/audit-writer.ts'
import type { AuditRecord } from '../../src/audit/record.ts'
import { parseConfig } from '../../src/config/load.ts'
import { LiveConfig } from '../../src/config/reload.ts'
import { silentLogger, type Logger } from '../../src/log.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import type { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import type { RequestObserver } from '../../src/proxy/observer.ts'
import { createProxy, type Proxy } from '../../src/proxy/proxy.ts'
import { openRuntime, type Runtime } from '../../src/runtime.ts'

export interface TestKeyvalet {
  readonly url: string
  /** The forward-proxy listener and keyvalet's CA certificate, when the config has listen.forward. */
  readonly forwardUrl: string | undefined
  readonly caCertPem: string | undefined
  readonly dir: string
  readonly configFile: string
  readonly masterKey: string
  readonly runtime: Runtime
  readonly proxy: Proxy
  readonly auditWriter: AuditWriter
  /** The configuration in force and its reloads (rewrite `configFile`, then `live.reload('admin')`). */
  readonly live: LiveConfig
  /** The clock keyvalet sees; tests move it instead of sleeping. */
  now: number
  setSecret(name: string, value: string): Promise<void>
  mintKey(grants: string[], opts?: { ttlMs?: number; agent?: string }): Promise<{ key: string; session: string }>
  audit(): Promise<AuditRecord[]>
  /** The admin listener (listen.admin, started with `admin`), and a new admin token of `role` with its id. */
  readonly adminUrl: string | undefined
  adminToken(role: AdminRole, opts?: { name?: string; ttlMs?: number }): Promise<{ token: string; id: string }>
  close(): Promise<void>
}

/**
 * Real keyvalet in this process: the config text written to a temp folder, a real SQLite store,
 * a random master key, the gateway listening on 127.0.0.1:0. `files` are written beside the config
 * (CA bundles it names); `log` receives keyvalet's operator log (silent by default). With `metrics`,
 * keyvalet feeds them as `keyvalet start` does; `observers` are told of every request outcome.
 */
export async function startKeyvalet(configText: string, opts: { files?: Record<string, string>; keyFile?: boolean; log?: Logger; admin?: { throttle?: ThrottleOptions }; metrics?: KeyvaletMetrics; observers?: RequestObserver[] } = {}): Promise<TestKeyvalet> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-test-'))
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content)
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, configText)
  const config = parseConfig(configText, configFile)
  const masterKey = randomBytes(32).toString('base64')
  const kv = { now: Date.now() }
  // keyFile: the key in <data_dir>/master.key (what a master-key rotation rewrites), not in the environment.
  if (opts.keyFile === true) {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(join(config.dataDir, 'master.key'), `${masterKey}\n`, { mode: 0o600 })
  }
  const env = opts.keyFile === true ? {} : { KEYVALET_MASTER_KEY: masterKey }
  const runtime = openRuntime(config, { env, createMasterKey: false, clock: () => kv.now })
  const metrics = opts.metrics
  let live: LiveConfig | undefined
  const audit = await AuditWriter.start({ databasePath: config.databasePath, fsync: config.auditFsync, key: await runtime.openAuditKey(), reserveBytes: config.auditReserveBytes, configVersion: () => live?.current.version ?? config.version, ...(metrics === undefined ? {} : { onCommit: metrics.auditCommitted }) })
  metrics?.requests.connectors(config.policy.connectors.keys())
  const observers = [...(metrics === undefined ? [] : [metrics.requests]), ...(opts.observers ?? [])]
  const gateway = createProxy({ config, sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log: opts.log ?? silentLogger, clock: () => kv.now, observers })
  metrics?.watch({ proxy: gateway, vault: runtime.vault, audit, sessions: runtime.store.sessions, clock: () => kv.now })
  live = new LiveConfig(config, { apply: (next) => gateway.apply(next), log: opts.log ?? silentLogger })
  const { url, forwardUrl, caCertPem } = await gateway.listen()
  const adminTokens = new AdminTokens(runtime.store.adminTokens, () => kv.now)
  const admin = opts.admin === undefined ? undefined : createAdminServer({
    config: () => live.current, reloadConfig: () => live.reload('admin'), openAuditKey: () => runtime.openAuditKey(), sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log: opts.log ?? silentLogger, clock: () => kv.now, adminTokens,
    listening: { gateway: url, forward: forwardUrl }, metrics, proxy: gateway,
  }, opts.admin)
  const adminUrl = admin === undefined ? undefined : (await admin.listen()).url
  return Object.assign(kv, {
    url, forwardUrl, caCertPem, dir, configFile, masterKey, runtime, live, adminUrl, proxy: gateway, auditWriter: audit,
    async adminToken(role: AdminRole, opts: { name?: string; ttlMs?: number } = {}) {
      const { token, value } = await adminTokens.create({ name: opts.name ?? `test-${role}`, role, ...(opts.ttlMs === undefined ? {} : { ttlMs: opts.ttlMs }) })
      return { token: value, id: token.id }
    },
    setSecret: (name: string, value: string) => runtime.vault.put(name, Buffer.from(value)),
    async mintKey(grants: string[], opts: { ttlMs?: number; agent?: string } = {}) {
      const { session, key } = await runtime.sessions.create({
        agent: opts.agent ?? 'test-agent', user: 'alice', workspace: 'acme', task: 'task-1', grants: grants.map(parseGrant), ttlMs: opts.ttlMs ?? 3_600_000,
      })
      return { key, session: session.id }
    },
    async audit() {
      return (await runtime.store.audit.read(0, 10_000)).map((row) => JSON.parse(row.line) as AuditRecord)
    },
    async close() {
      await admin?.close()
      metrics?.close()
      await gateway.close()
      await audit.close()
      await runtime.close()
      rmSync(dir, { recursive: true, force: true })
    },
  })
}
