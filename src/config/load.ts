/**
 * Loads keyvalet.yaml: YAML syntax, then structure (the schema in schema.ts, whose defaults are
 * then filled in, once), then meaning
 * (compile.ts), then the dangerous-config warnings (check.ts). Every error is an OperatorError
 * naming the file, the line and the field: `keyvalet.yaml:14: connectors.github.rules[0].severity: ...`,
 * up to 10 of them at once. The result holds only domain objects: nothing later sees raw YAML.
 */

import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { LineCounter, parseDocument } from 'yaml'
import * as S from 'typebox/schema'
import { durationMs } from '../duration.ts'
import { OperatorError } from '../errors.ts'
import type { LogFormat, LogLevel } from '../log.ts'
import type { Connector, Policy } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import { CONFIG_SCHEMA, type ConfigFile } from './schema.ts'
import { compileConnector, compileUpstreamProxy } from './compile.ts'
import { compileStore } from './store.ts'
import type { StoreConfig } from '../store/location.ts'
import { checkPolicy, explainPolicy, secretReferences, type ConfigWarning, type SecretReference } from './check.ts'
import { checkCidrs, dnsServerProblem, parseHostPort, parseListenerUrl, type HostPort } from '../schema-kit/addresses.ts'
import { configVersion } from './version.ts'
import { compileBudgets } from '../budgets/config.ts'
import { compileApprovals, type WebhookOptions } from '../approvals/config.ts'
import type { Budget } from '../model/budget.ts'
import { formatProblems, locator, pointerToPath, type Problem } from './locate.ts'
import { fillDefaults } from '../schema-kit/defaults.ts'

export type { ConfigWarning, SecretReference } from './check.ts'

export interface Config {
  /** Absolute path of the file loaded. */
  readonly file: string
  /** The configuration's version: a hash of its canonical form (version.ts); audit records name it. */
  readonly version: string
  /** The file as keyvalet reads it, every default filled in (frozen): what `GET /v1/config` shows. It names vault secrets, never holds their values. */
  readonly effective: ConfigFile
  readonly gateway: { readonly host: string; readonly port: number }
  /** The forward-proxy listener, when configured. */
  readonly forward: { readonly host: string; readonly port: number } | undefined
  /** The admin API listener, when configured (never the address of the gateway or the forward proxy). */
  readonly admin: { readonly host: string; readonly port: number } | undefined
  /** The gateway and the forward proxy as sandboxes reach them (`http://host:port`), when configured. */
  readonly gatewayUrl: URL | undefined
  readonly forwardUrl: URL | undefined
  /** Pass-through CONNECT destinations (lower-case host:port) → CIDRs they may reach although not public. */
  readonly tunnels: ReadonlyMap<string, readonly string[]>
  /** The instance's corporate proxy for upstream connections, when configured. */
  readonly upstreamProxy: UpstreamProxy | undefined
  /** DNS servers keyvalet asks; undefined = the system's resolv.conf. */
  readonly dnsServers: readonly string[] | undefined
  /** Absolute. */
  readonly dataDir: string
  /** `<dataDir>/keyvalet.db`. */
  readonly databasePath: string
  /** Where sessions, the vault and the audit log live: SQLite at databasePath, or PostgreSQL (`store`). */
  readonly store: StoreConfig
  /** As the file gives them, defaults filled in (schema.ts LIMITS): a new limit is one field there. */
  readonly limits: ConfigFile['limits']
  /** The longest session a task key may be minted for (sessions.max_ttl). */
  readonly sessions: { readonly maxTtlMs: number }
  /** Whether audit commits are fsynced (see schema.ts, audit.fsync). */
  readonly auditFsync: boolean
  /** Where the audit engine runs: undefined decides by the store (audit.thread auto). */
  readonly auditThread: boolean | undefined
  /** Disk space held for the audit log (see schema.ts, audit.reserve_bytes). */
  readonly auditReserveBytes: number
  /** Bytes of audit records spooled locally while a PostgreSQL store is unreachable (see schema.ts, audit.spool_bytes). */
  readonly auditSpoolBytes: number
  /** When a request in flight gets its open record (see schema.ts, audit.open_after_ms). */
  readonly auditOpenAfterMs: number
  /** The operator log (see schema.ts, log). */
  readonly log: { readonly level: LogLevel; readonly format: LogFormat }
  /** Whether Prometheus metrics are kept (see schema.ts, metrics.enabled). */
  readonly metricsEnabled: boolean
  /** Where the policy comes from (see schema.ts, fleet.policy): the file alone, or pushed policies over it. */
  readonly fleetPolicy: 'file' | 'pushed'
  readonly policy: Policy
  /** Budgets and rate limits (src/budgets/), in the file's order. */
  readonly budgets: readonly Budget[]
  /** Where new pending approvals are announced (src/approvals/webhook.ts); undefined: nowhere but the admin API. */
  readonly approvalWebhook: WebhookOptions | undefined
  readonly warnings: readonly ConfigWarning[]
  /** How some rules read (check.ts explainPolicy), for `keyvalet check`: not warnings. */
  readonly notes: readonly ConfigWarning[]
  /** The vault secrets the configuration names (`check` and `start` warn about those not set). */
  readonly secrets: readonly SecretReference[]
  /** The pushed policy served under (config/policy-file.ts): its sequence number and SHA-256; undefined for the file alone. */
  readonly pushed?: { readonly seq: number; readonly sha256: string }
}

/** A task key is for a task: no configuration lets one live longer than a year. */
const MAX_SESSION_TTL_MS = 365 * 86_400_000

const HINT = 'fix the fields named above; docs/config.md describes every field, and examples/keyvalet.yaml is a working example'

export function loadConfig(file: string): Config {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'configuration file not found' : `cannot read the configuration file (${code ?? 'error'})`
    throw new OperatorError(`${file}: ${why}`, 'pass --config <file>; examples/keyvalet.yaml is a starting point, docs/config.md describes every field', { cause: err })
  }
  return parseConfig(text, file)
}

/** `file` names the source in messages (as given) and anchors relative paths (resolved). */
export function parseConfig(text: string, file: string): Config {
  const absolute = resolve(file)
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true })
  if (doc.errors.length > 0) {
    const messages = doc.errors.slice(0, 10).map((e) => `${file}:${e.linePos?.[0].line ?? 1}: ${yamlMessage(e.message)}`)
    throw new OperatorError(messages.join('\n'), 'fix the YAML syntax at the line shown')
  }
  let raw: unknown
  try {
    raw = doc.toJS()
  } catch (err) {
    throw new OperatorError(`${file}: ${(err as Error).message}`, 'fix the YAML anchors and aliases')
  }
  const locate = locator(doc, lines)
  const fail = (problems: readonly Problem[]): never => {
    throw new OperatorError(formatProblems(file, problems, locate), HINT)
  }

  const structural = schemaProblems(raw)
  if (structural.length > 0) fail(structural)
  const config = withDefaults(raw)

  const problems: Problem[] = []
  const listen = (field: 'gateway' | 'forward' | 'admin', text: string | undefined): HostPort | undefined => {
    const parsed = text === undefined ? undefined : parseHostPort(text, 0, `127.0.0.1:${{ gateway: 8787, forward: 8789, admin: 8790 }[field]}`)
    if (typeof parsed !== 'string') return parsed
    problems.push({ at: ['listen', field], message: parsed })
    return undefined
  }
  const gateway = listen('gateway', config.listen.gateway)
  const forward = listen('forward', config.listen.forward)
  const admin = listen('admin', config.listen.admin)
  for (const [field, other] of [['gateway', gateway], ['forward', forward]] as const) {
    if (admin !== undefined && other !== undefined && sameListener(admin, other)) problems.push({ at: ['listen', 'admin'], message: `must not be the address of listen.${field}: the admin API needs a listener of its own, out of the sandboxes' reach` })
  }
  const sandboxUrl = (field: 'gateway_url' | 'forward_url', text: string | undefined): URL | undefined => {
    const parsed = text === undefined ? undefined : parseListenerUrl(text)
    if (typeof parsed !== 'string') return parsed
    problems.push({ at: ['listen', field], message: parsed })
    return undefined
  }
  const gatewayUrl = sandboxUrl('gateway_url', config.listen.gateway_url)
  const forwardUrl = sandboxUrl('forward_url', config.listen.forward_url)
  if (forwardUrl !== undefined && forward === undefined) problems.push({ at: ['listen', 'forward_url'], message: 'there is no forward proxy: set listen.forward too' })
  const tunnels = new Map<string, readonly string[]>()
  config.tunnels.forEach((t, i) => {
    const entry = typeof t === 'string' ? { to: t, allow_addresses: [] } : t
    const parsed = parseHostPort(entry.to, 1, 'registry.npmjs.org:443')
    if (typeof parsed === 'string') problems.push({ at: typeof t === 'string' ? ['tunnels', i] : ['tunnels', i, 'to'], message: parsed })
    else tunnels.set(`${parsed.host}:${parsed.port}`, entry.allow_addresses)
    if (typeof t !== 'string') checkCidrs(t.allow_addresses, (j, message) => problems.push({ at: ['tunnels', i, 'allow_addresses', j], message }))
  })
  config.dns?.servers?.forEach((server, i) => {
    const problem = dnsServerProblem(server)
    if (problem !== undefined) problems.push({ at: ['dns', 'servers', i], message: problem })
  })
  const dir = dirname(absolute)
  const connectors = new Map<string, Connector>()
  for (const [name, entry] of Object.entries(config.connectors)) {
    connectors.set(name, compileConnector(name, entry, { dir, problems, idleTimeoutMs: config.limits.idle_timeout_ms }))
  }
  const maxTtlMs = durationMs(config.sessions.max_ttl) ?? 0
  if (maxTtlMs <= 0 || maxTtlMs > MAX_SESSION_TTL_MS) problems.push({ at: ['sessions', 'max_ttl'], message: 'must be longer than 0 and at most 365d' })
  const upstreamProxy = config.upstream_proxy === undefined ? undefined : compileUpstreamProxy(config.upstream_proxy, (f, m) => void problems.push({ at: ['upstream_proxy', ...f], message: m }))
  const budgets = compileBudgets(config.budgets, { connectors }, config.limits.idle_timeout_ms, (f, m) => void problems.push({ at: ['budgets', ...f], message: m }))
  const approvalWebhook = compileApprovals(config.approvals, (f, m) => void problems.push({ at: ['approvals', ...f], message: m }))
  const dataDir = resolve(dir, config.data_dir)
  const databasePath = join(dataDir, 'keyvalet.db')
  const store = compileStore(config.store, { path: databasePath, fsync: config.audit.fsync }, dir, (at, message) => void problems.push({ at: ['store', ...at], message }))
  if (problems.length > 0) fail(problems)

  const policy: Policy = { connectors }
  const effective = deepFreeze(structuredClone(config))
  return {
    file: absolute,
    version: configVersion(effective, connectors),
    effective,
    gateway: gateway as { host: string; port: number },
    forward,
    admin,
    gatewayUrl,
    forwardUrl,
    tunnels,
    dnsServers: config.dns?.servers,
    upstreamProxy,
    dataDir,
    databasePath,
    store,
    limits: config.limits,
    sessions: { maxTtlMs },
    auditFsync: config.audit.fsync,
    auditThread: config.audit.thread === 'auto' ? undefined : config.audit.thread === 'on',
    auditReserveBytes: config.audit.reserve_bytes,
    auditSpoolBytes: config.audit.spool_bytes,
    auditOpenAfterMs: config.audit.open_after_ms,
    log: { level: config.log.level, format: config.log.format },
    metricsEnabled: config.metrics.enabled,
    fleetPolicy: config.fleet?.policy ?? 'file',
    policy,
    budgets,
    approvalWebhook,
    warnings: checkPolicy(policy, locate, config.limits),
    notes: explainPolicy(policy, locate),
    secrets: secretReferences(policy, upstreamProxy, locate),
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

let configValidator: S.Validator | undefined
const validator = (): S.Validator => (configValidator ??= S.Compile(CONFIG_SCHEMA))

/**
 * The file with every default of the schema filled in (mutates `raw`), for a value the validator
 * accepted. Checked again, by the same validator, so that the type rests on a check, not a cast.
 */
function withDefaults(raw: unknown): ConfigFile {
  const filled: unknown = fillDefaults(CONFIG_SCHEMA, raw)
  if (!isConfigFile(filled)) throw new Error('the configuration does not match its schema once its defaults are filled in')
  return filled
}

/** ConfigFile is Static<> of the schema this validator was compiled from. */
function isConfigFile(value: unknown): value is ConfigFile {
  return validator().Check(value)
}

function schemaProblems(raw: unknown): Problem[] {
  const [, errors] = validator().Errors(raw)
  const problems: Problem[] = []
  for (const e of errors) {
    const at = pointerToPath(e.instancePath, raw)
    const node = schemaNode(e.schemaPath)
    const params = e.params as Record<string, unknown>
    switch (e.keyword) {
      case 'boolean': // "schema is false": the additionalProperties error below says it better
      case 'propertyNames': // summary of the per-name errors reported at each name
        break
      case 'additionalProperties':
        // Only `additionalProperties: false` means "unknown field"; otherwise the value's own errors explain.
        if (node['additionalProperties'] !== false) break
        for (const name of params['additionalProperties'] as string[]) {
          const known = Object.keys((node['properties'] as object | undefined) ?? {}).join(', ')
          problems.push({ at: [...at, name], message: `unknown field (expected one of: ${known})` })
        }
        break
      case 'required':
        for (const name of params['requiredProperties'] as string[]) problems.push({ at, message: `missing required field ${name}` })
        break
      case 'enum':
        problems.push({ at, message: `must be one of ${(params['allowedValues'] as unknown[]).join(', ')}` })
        break
      case 'const':
        problems.push({ at, message: `must be ${JSON.stringify(params['allowedValue'])}` })
        break
      default:
        problems.push({ at, message: typeof node['errorMessage'] === 'string' && e.keyword === 'pattern' ? node['errorMessage'] : e.message })
    }
  }
  return problems
}

/** The schema object a validator error's schemaPath ('#/properties/x/...') points at. */
function schemaNode(schemaPath: string): Record<string, unknown> {
  let node: unknown = CONFIG_SCHEMA
  for (const key of schemaPath.replace(/^#\/?/, '').split('/').filter((k) => k !== '')) {
    node = (node as Record<string, unknown> | undefined)?.[key.replaceAll('~1', '/').replaceAll('~0', '~')]
  }
  return typeof node === 'object' && node !== null ? (node as Record<string, unknown>) : {}
}

/** yaml's first message line, without its "at line L, column C:" tail (the line is given separately). */
function yamlMessage(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '')
}

/** Whether two listeners would take the same port on one address (a wildcard takes it on all; port 0 is a fresh port each time). */
function sameListener(a: HostPort, b: HostPort): boolean {
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::'
  return a.port !== 0 && a.port === b.port && (a.host === b.host || wildcard(a.host) || wildcard(b.host))
}
