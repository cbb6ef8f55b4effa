/**
 * The "dangerous config" check: legal configuration that an operator should look at twice.
 * Computed at load (after every error is fixed); each warning is located like an error.
 */

import { sourceDefinition } from '../credentials/sources/registry.ts'
import { severityRank, type Connector, type Policy, type Rule, type UpstreamProxy } from '../policy/types.ts'
import type { FieldPath, Locate } from './locate.ts'

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

export function checkPolicy(policy: Policy, locate: Locate): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  const warn = (at: FieldPath, message: string): void => {
    const { line, path } = locate(at)
    warnings.push({ line, path, message })
  }
  for (const connector of policy.connectors.values()) {
    const at: FieldPath = ['connectors', connector.name]
    if (connector.upstream.protocol === 'http:') warn([...at, 'upstream'], cleartextMessage(connector))
    if (connector.credential === undefined) warn(at, 'has no credential: requests go out without one')
    if (connector.rules.length === 0) warn(at, 'has no rules, so it refuses everything')
    connector.rules.forEach((rule, i) => {
      const broad = broadSegment(rule.path.source)
      if (broad !== undefined) {
        warn(
          [...at, 'rules', i, 'path'],
          `${rule.path.source} allows any value in segment ${broad}: for an API like GitHub's that can mean every repository of every organisation; spell out the leading segments`,
        )
      }
      const unchecked = uncheckedBodyMethods(rule)
      if (unchecked.length > 0) {
        warn(
          [...at, 'rules', i, 'methods'],
          `rule ${rule.id} is ${rule.severity} and allows ${unchecked.join(', ')} with any body: add a body schema to constrain it`,
        )
      }
    })
  }
  return warnings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
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
  return BODY_METHODS.filter((m) => rule.methods.has(m))
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
