/**
 * The "dangerous config" check: legal configuration that an operator should look at twice.
 * Computed at load (after every error is fixed); each warning is located like an error.
 */

import { sourceDefinition } from '../credentials/sources/registry.ts'
import { severityRank, type Connector, type Policy, type Rule } from '../model/policy.ts'
import { type UpstreamProxy } from '../model/options.ts'
import type { FieldPath } from '../schema-kit/field-path.ts'
import type { Locate } from './locate.ts'
import { unpatternedGuardedHeaders } from './check-headers.ts'

export interface ConfigWarning {
  readonly line: number | undefined
  readonly path: string
  readonly message: string
}

/** A vault secret the configuration names, and where. */
export interface SecretReference {
  readonly name: string
  readonly line: number | undefined
  readonly path: string
}

/** Methods whose requests normally carry a body worth constraining. */
const BODY_METHODS = ['POST', 'PUT', 'PATCH']

/** How many leading segments usually name an owner and a repository/project/account. */
const OWNER_DEPTH = 2

/** The timeouts, in milliseconds, as the file gives them with defaults filled in (the `limits` block). */
export interface Timeouts {
  readonly upstream_timeout_ms: number
  readonly request_timeout_ms: number
  readonly idle_timeout_ms: number
}

export function checkPolicy(policy: Policy, locate: Locate, timeouts?: Timeouts): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  const warn = (at: FieldPath, message: string): void => {
    const { line, path } = locate(at)
    warnings.push({ line, path, message })
  }
  if (timeouts !== undefined) checkTimeouts(timeouts, warn)
  for (const connector of policy.connectors.values()) {
    const at: FieldPath = ['connectors', connector.name]
    if (connector.upstream.protocol === 'http:') warn([...at, 'upstream'], cleartextMessage(connector))
    if (connector.credential === undefined) warn(at, 'has no credential: requests go out without one')
    if (connector.rules.length === 0 && connector.mcp === undefined) warn(at, 'has no rules, so it refuses everything')
    if (connector.mcp?.trustAnnotations === true) warn([...at, 'mcp', 'trust_annotations'], "trusts the MCP server's tool annotations: a tool no rule names gets the severity the server claims for it (docs/mcp.md)")
    connector.rules.forEach((rule, i) => {
      rule.paths.forEach(({ source }, j) => {
        const broad = broadSegment(source)
        if (broad === undefined) return
        warn(
          pathField(at, rule, i, j),
          `${source} allows any value in segment ${broad}: for an API like GitHub's that can mean every repository of every organisation; spell out the leading segments`,
        )
      })
      const unchecked = uncheckedBodyMethods(rule)
      if (unchecked.length > 0) {
        warn(
          [...at, 'rules', i, 'methods'],
          `rule ${rule.id} is ${rule.severity} and allows ${unchecked.join(', ')} with any body: add a body schema to constrain it`,
        )
      }
      for (const [header, does] of unpatternedGuardedHeaders(connector, rule)) {
        warn([...at, 'rules', i, 'headers', header], `rule ${rule.id} names ${header} without a pattern, so any value passes and ${header} ${does}: give it a pattern`)
      }
    })
  }
  return warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
}

/**
 * Timeouts that contradict each other: the idle timeout fires when nothing moves, which includes
 * waiting for an upstream's first byte and for a client's headers, so it must be the longest.
 */
function checkTimeouts(t: Timeouts, warn: (at: FieldPath, message: string) => void): void {
  const at: FieldPath = ['limits', 'idle_timeout_ms']
  if (t.idle_timeout_ms <= t.upstream_timeout_ms) {
    warn(at, `${t.idle_timeout_ms} ms is not longer than upstream_timeout_ms (${t.upstream_timeout_ms} ms): an upstream slow to answer is cut by the idle timeout (504 idle_timeout) before upstream_timeout applies; make idle_timeout_ms the longer`)
  }
  if (t.idle_timeout_ms <= t.request_timeout_ms) {
    warn(at, `${t.idle_timeout_ms} ms is not longer than request_timeout_ms (${t.request_timeout_ms} ms): a client that stops sending its headers is closed by the idle timeout, unanswered and unaudited, before request_timeout (408) applies; make idle_timeout_ms the longer`)
  }
}

/**
 * Notes that explain how a rule reads, for `keyvalet check`: not dangerous, so never a warning.
 * A pattern ending in `/**` matches below its prefix only; say so where the rule does not list the prefix too.
 */
export function explainPolicy(policy: Policy, locate: Locate): ConfigWarning[] {
  const notes: ConfigWarning[] = []
  for (const connector of policy.connectors.values()) {
    connector.rules.forEach((rule, i) => {
      const sources = rule.paths.map((p) => p.source)
      sources.forEach((source, j) => {
        if (!source.endsWith('/**')) return
        const prefix = source.slice(0, -3) || '/'
        if (sources.includes(prefix) || sources.includes(`${prefix}/`)) return
        const below = prefix === '/' ? '/' : `${prefix}/`
        const message = `rule ${rule.id}: ${source} matches paths below ${below}, not ${prefix} itself; to allow it too, write path: [${[prefix, ...sources].join(', ')}]`
        notes.push({ ...locate(pathField(['connectors', connector.name], rule, i, j)), message })
      })
    })
  }
  return notes.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
}

/** Where a rule's path pattern `j` is written: `path`, or `path[j]` when the rule lists several. */
function pathField(at: FieldPath, rule: Rule, i: number, j: number): FieldPath {
  return rule.paths.length > 1 ? [...at, 'rules', i, 'path', j] : [...at, 'rules', i, 'path']
}

/**
 * Every vault secret the configuration names: each connector's credential (credential.secret, and
 * what its source reads besides, e.g. an OAuth client secret) and the corporate proxies' secrets.
 */
export function secretReferences(policy: Policy, upstreamProxy: UpstreamProxy | undefined, locate: Locate): SecretReference[] {
  const refs: SecretReference[] = []
  const add = (at: FieldPath, name: string | undefined): void => {
    if (name !== undefined) refs.push({ name, ...locate(at) })
  }
  add(['upstream_proxy', 'secret'], upstreamProxy?.secret)
  for (const connector of policy.connectors.values()) {
    const at: FieldPath = ['connectors', connector.name]
    const credential = connector.credential
    add([...at, 'credential', 'secret'], credential?.secret)
    const source = credential === undefined ? undefined : sourceDefinition(credential.source.type)
    for (const { field, name } of source?.secrets?.(credential?.source.options) ?? []) add([...at, 'credential', credential?.source.type ?? '', ...field], name)
    add([...at, 'upstream_proxy', 'secret'], connector.upstreamProxy?.secret)
  }
  return refs.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
}

/** The references whose secret the vault (its names: `stored`) does not hold. */
export function missingSecrets(refs: readonly SecretReference[], stored: ReadonlySet<string>): SecretReference[] {
  return refs.filter((r) => !stored.has(r.name))
}

export function missingSecretWarning(r: SecretReference): ConfigWarning {
  return { line: r.line, path: r.path, message: `vault secret ${r.name} is not set (keyvalet secret set ${r.name})` }
}

/** 1-based index of the first wildcard among the leading segments, if any. */
function broadSegment(source: string): number | undefined {
  const segments = source.slice(1).split('/').slice(0, OWNER_DEPTH)
  const i = segments.findIndex((s) => s === '*' || s === '**' || s.startsWith(':'))
  return i < 0 ? undefined : i + 1
}

function uncheckedBodyMethods(rule: Rule): string[] {
  if (rule.body !== undefined || severityRank(rule.severity) < severityRank('write')) return []
  return rule.allowBody ? [...rule.methods] : BODY_METHODS.filter((m) => rule.methods.has(m))
}

function cleartextMessage(connector: Connector): string {
  const base = `${connector.upstream.origin} is cleartext http: the credential and all traffic cross the network unencrypted`
  return isLoopback(connector.upstream.hostname)
    ? `${base} (a loopback host is typical for tests; never point this at a real service or credential)`
    : base
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === '[::1]'
}
