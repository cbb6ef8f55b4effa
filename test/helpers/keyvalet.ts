import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ThrottleOptions } from '../../src/admin/throttle.ts'
import type { AdminRole } from '../../src/model/admin-token.ts'
import type { AuditRecord } from '../../src/audit/record.ts'
import { parseConfig } from '../../src/config/load.ts'
import type { LiveConfig } from '../../src/config/reload.ts'
import { silentLogger, type Logger } from '../../src/log.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import type { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import type { RequestObserver } from '../../src/proxy/observer.ts'
import type { AuditWriter } from '../../src/audit/audit-writer.ts'
import type { Proxy } from '../../src/proxy/proxy.ts'
import { openRuntime, type Runtime } from '../../src/runtime.ts'
import { serve } from '../../src/serve.ts'

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
 * a random master key (or `masterKey`, for instances sharing one store), the gateway listening on 127.0.0.1:0. `files` are written beside the config
 * (CA bundles it names); `log` receives keyvalet's operator log (silent by default). With `metrics`,
 * keyvalet feeds them as `keyvalet start` does; `observers` are told of every request outcome.
 */
export async function startKeyvalet(configText: string, opts: { files?: Record<string, string>; keyFile?: boolean; masterKey?: string; log?: Logger; admin?: { throttle?: ThrottleOptions }; metrics?: KeyvaletMetrics; observers?: RequestObserver[] } = {}): Promise<TestKeyvalet> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-test-'))
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content)
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, configText)
  const config = parseConfig(configText, configFile)
  const masterKey = opts.masterKey ?? randomBytes(32).toString('base64')
  const kv = { now: Date.now() }
  // keyFile: the key in <data_dir>/master.key (what a master-key rotation rewrites), not in the environment.
  if (opts.keyFile === true) {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(join(config.dataDir, 'master.key'), `${masterKey}\n`, { mode: 0o600 })
  }
  const env = opts.keyFile === true ? {} : { KEYVALET_MASTER_KEY: masterKey }
  const runtime = await openRuntime(config, { env, createMasterKey: false, clock: () => kv.now })
  const serving = await serve(runtime, { log: opts.log ?? silentLogger, clock: () => kv.now, ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }), ...(opts.observers === undefined ? {} : { observers: opts.observers }), ...(opts.admin === undefined ? {} : { admin: opts.admin }) })
  const { url, forwardUrl, caCertPem, adminUrl, live, adminTokens } = serving
  return Object.assign(kv, {
    url, forwardUrl, caCertPem, dir, configFile, masterKey, runtime, live, adminUrl, proxy: serving.proxy, auditWriter: serving.audit,
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
      await serving.close()
      await runtime.close()
      rmSync(dir, { recursive: true, force: true })
    },
  })
}
