/**
 * From a structurally valid connector entry (schema-checked, its defaults filled in: see
 * schema.ts) to the domain Connector: the checks JSON Schema cannot express, each reported as a
 * located Problem instead of thrown.
 */

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { X509Certificate } from 'node:crypto'
import type { Connector, CredentialBinding, Rule, ValueConstraint } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import { compilePathPattern } from '../policy/path-pattern.ts'
import { normalisePath } from '../policy/path.ts'
import type { Problem } from './locate.ts'
import { type FieldPath } from '../schema-kit/field-path.ts'
import { checkCidrs, urlHostProblem } from '../schema-kit/addresses.ts'
import { compileJsonSchema } from '../schema-kit/json-schema.ts'
import { SOURCES, sourceDefinition } from '../credentials/sources/registry.ts'
import { ALL_CREDENTIAL_KINDS, credentialKind } from '../credentials/registry.ts'
import { reservedName } from '../vault/reserved.ts'
import { FORBIDDEN_HEADERS } from '../schema-kit/headers.ts'
import { compileAssertion } from '../assertion/config.ts'
import { compileAttribution } from '../attribution/config.ts'
import { compileMcp } from '../mcp/config.ts'
import { compileUsage } from '../budgets/config.ts'
import { compileApproval, withApproval } from '../approvals/config.ts'
import type { ConnectorFile, CredentialFile, UpstreamProxyFile } from './connector-schema.ts'
import type { RuleFile } from './rule-schema.ts'

export interface CompileContext {
  /** Folder of the config file: relative file names are resolved against it. */
  readonly dir: string
  readonly problems: Problem[]
  /** limits.idle_timeout_ms: an approval must be decided before the waiting connection would close. */
  readonly idleTimeoutMs: number
}

/** CONNECT opens a tunnel past the rules; TRACE echoes the request, injected credential included. */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE'])

export function compileConnector(name: string, raw: ConnectorFile, ctx: CompileContext): Connector {
  const at: FieldPath = ['connectors', name]
  const problem = (field: FieldPath, message: string): void => void ctx.problems.push({ at: [...at, ...field], message })
  const upstream = compileUpstream(raw, (m) => problem(['upstream'], m))
  const ca = raw.ca_file === undefined ? undefined : readCa(resolve(ctx.dir, raw.ca_file), (m) => problem(['ca_file'], m))
  const credential = raw.credential === undefined ? undefined : compileCredential(name, raw.allow_insecure, raw.credential, (f, m) => problem(['credential', ...f], m))
  const seen = new Map<string, number>()
  const rules = raw.rules.map((r, i) => {
    const first = seen.get(r.id)
    if (first !== undefined) problem(['rules', i, 'id'], `duplicate rule id ${r.id} (already used by rules[${first}])`)
    else seen.set(r.id, i)
    return compileRule(name, r, ctx.idleTimeoutMs, (f, m) => problem(['rules', i, ...f], m))
  })
  // Headers keyvalet itself sets may not collide: framing headers, the credential's slot, the assertion's.
  const slot = credential === undefined ? undefined : credentialKind(credential.kind).slot(credential).header
  const taken = new Set([...FORBIDDEN_HEADERS, ...(slot === undefined ? [] : [slot])])
  const assertion = raw.assertion === undefined ? undefined : compileAssertion(name, raw.assertion, taken, (f, m) => problem(['assertion', ...f], m))
  const attribution = raw.attribution === undefined ? undefined : compileAttribution(raw.attribution, new Set([...taken, ...(assertion === undefined ? [] : [assertion.header])]), (f, m) => problem(['attribution', ...f], m))
  const mcp = raw.mcp === undefined ? undefined : compileMcp(raw.mcp, new Set(seen.keys()), (f, m) => problem(['mcp', ...f], m))
  const usage = raw.usage === undefined ? undefined : compileUsage(raw.usage)
  const approval = raw.approval === undefined ? undefined : { severity: raw.approval.severity, options: compileApproval(raw.approval, ctx.idleTimeoutMs, (f, m) => problem(['approval', ...f], m)) }
  const approved = withApproval(rules, approval)
  // A signature made after the approval would change the headers it digested (approvals/digest.ts).
  if (credential?.kind === 'aws_sigv4' && approved.some((r) => r.approval !== undefined)) problem(raw.approval === undefined ? ['rules'] : ['approval'], 'approval is not available on an aws_sigv4 connector: its signature rewrites the headers an approval covers')
  checkCidrs(raw.allow_addresses, (i, m) => problem(['allow_addresses', i], m))
  if (raw.placeholder !== undefined && credential === undefined) problem(['placeholder'], 'a placeholder stands for a credential: add a credential binding')
  if (raw.placeholder !== undefined && /kvt_/i.test(raw.placeholder)) problem(['placeholder'], 'a placeholder must not look like a task key')
  return {
    name, upstream, allowInsecure: raw.allow_insecure, ca, credential, rules: approved,
    headerGuard: credential === undefined ? undefined : credentialKind(credential.kind).headerGuard,
    placeholder: raw.placeholder, allowAddresses: raw.allow_addresses, assertion, attribution, mcp, usage, report: raw.mode === 'report',
    upstreamProxy: raw.upstream_proxy === undefined ? undefined : raw.upstream_proxy === 'none' ? null : compileUpstreamProxy(raw.upstream_proxy, (f, m) => problem(['upstream_proxy', ...f], m)),
  }
}

export function compileUpstreamProxy(raw: UpstreamProxyFile, problem: (f: FieldPath, m: string) => void): UpstreamProxy {
  let url = new URL('http://invalid.invalid:1')
  try {
    url = new URL(raw.url)
    if (url.protocol !== 'http:') problem(['url'], 'must be an http:// proxy URL')
    if (url.username !== '' || url.password !== '') problem(['url'], 'put the proxy credentials in the vault (secret), not in the URL')
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') problem(['url'], 'must be http://host:port with nothing after it')
    const host = urlHostProblem(raw.url)
    if (host !== undefined) problem(['url'], host)
  } catch {
    problem(['url'], 'must be an absolute URL such as http://proxy.corp:3128')
  }
  checkCidrs(raw.allow_addresses, (i, m) => problem(['allow_addresses', i], m))
  const reserved = raw.secret === undefined ? undefined : reservedName(raw.secret)
  if (reserved !== undefined) problem(['secret'], reserved)
  return { url, secret: raw.secret, allowAddresses: raw.allow_addresses }
}

function compileUpstream(raw: ConnectorFile, problem: (m: string) => void): URL {
  let url: URL
  try {
    url = new URL(raw.upstream)
  } catch {
    problem('must be an absolute URL such as https://api.example.com')
    return new URL('https://invalid.invalid')
  }
  if (url.protocol === 'http:') {
    if (!raw.allow_insecure) problem('an http:// upstream needs allow_insecure: true (the credential would cross the network in cleartext)')
  } else if (url.protocol !== 'https:') {
    problem('must be an https:// URL (or http:// with allow_insecure: true)')
  }
  const host = urlHostProblem(raw.upstream)
  if (host !== undefined) problem(host)
  if (url.username !== '' || url.password !== '') problem('must not contain user info (put the credential in the vault)')
  if (raw.upstream.includes('?')) problem('must not contain a query')
  if (raw.upstream.includes('#')) problem('must not contain a fragment')
  if (/\/\.\.?(?:[/?#]|$)|\\/.test(raw.upstream.replace(/^[a-z]+:\/\//i, '/'))) problem('must not contain dot segments or backslashes')
  url.pathname = url.pathname.replace(/\/+$/, '')
  if (url.pathname !== '/') {
    try {
      normalisePath(url.pathname)
    } catch {
      problem(`base path ${url.pathname} is ambiguous (encoded separators, empty segments or odd characters)`)
    }
  }
  return url
}

/** A PEM file of CA certificates, read and checked; undefined after reporting why not. */
export function readCa(file: string, problem: (m: string) => void): string | undefined {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    problem(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return undefined
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  try {
    if (blocks.length === 0) throw new Error('no certificate')
    for (const block of blocks) new X509Certificate(block)
  } catch {
    problem(`${file} is not a PEM file of CA certificates`)
    return undefined
  }
  return pem
}

function compileCredential(connector: string, allowInsecure: boolean, raw: CredentialFile, problem: (f: FieldPath, m: string) => void): CredentialBinding {
  // keyvalet.* secrets are keyvalet's own (the interception CA's key): never sent to an upstream.
  const reserved = raw.secret === undefined ? undefined : reservedName(raw.secret)
  if (reserved !== undefined) problem(['secret'], reserved)
  const source = compileSource(connector, allowInsecure, raw, problem)
  const fields: Readonly<Record<string, unknown>> = raw
  for (const other of ALL_CREDENTIAL_KINDS) {
    for (const field of Object.keys(other.fields)) {
      if (other.kind !== raw.inject && fields[field] !== undefined) problem([field], `only applies to inject: ${other.kind}`)
    }
  }
  const kind = credentialKind(raw.inject)
  for (const field of kind.required) {
    if (fields[field] === undefined) problem([], `missing required field ${field} (for inject: ${raw.inject})`)
  }
  return { secret: raw.secret, source, kind: kind.kind, options: kind.compile(fields, problem) }
}

/** The source named by `credential.source` (default static), its block compiled by its own definition. */
function compileSource(connector: string, allowInsecure: boolean, raw: CredentialFile, problem: (f: FieldPath, m: string) => void): CredentialBinding['source'] {
  // No schema default: whether `source` was written changes the message about a missing secret.
  const type = raw.source ?? 'static'
  const definition = sourceDefinition(type)
  if (definition === undefined) {
    problem(['source'], `unknown credential source ${JSON.stringify(type)}`)
    return { type, options: undefined }
  }
  if (definition.needsSecret === true && raw.secret === undefined) problem([], `missing required field secret${raw.source === undefined ? '' : ` (for source: ${type})`}`)
  if (definition.needsSecret === false && raw.secret !== undefined) problem(['secret'], `does not apply to source: ${type}`)
  const blocks: Readonly<Record<string, unknown>> = raw
  for (const other of SOURCES) {
    if (other.type !== type && other.block !== undefined && blocks[other.type] !== undefined) problem([other.type], `only applies to source: ${other.type}`)
  }
  if (definition.block !== undefined && blocks[type] === undefined) {
    problem([], `missing required field ${type} (for source: ${type})`)
    return { type, options: undefined }
  }
  const options = definition.compile(blocks[type], { secret: raw.secret, connector, allowInsecure }, (f, m) => problem(definition.block === undefined ? f : [type, ...f], m))
  return { type, options }
}

function compileRule(connector: string, raw: RuleFile, idleTimeoutMs: number, problem: (f: FieldPath, m: string) => void): Rule {
  raw.methods.forEach((m, i) => {
    if (FORBIDDEN_METHODS.has(m)) problem(['methods', i], `${m} is never allowed through keyvalet`)
  })
  if (raw.websocket && !raw.methods.includes('GET')) problem(['websocket'], 'a WebSocket upgrade is a GET: list GET in methods')
  if (raw.allow_body === false && raw.body !== undefined) problem(['allow_body'], 'a rule with a body schema takes a body: remove allow_body: false')
  const sources = typeof raw.path === 'string' ? [raw.path] : raw.path
  const paths = sources.flatMap((source, i) => {
    try {
      return [compilePathPattern(source)]
    } catch (err) {
      problem(typeof raw.path === 'string' ? ['path'] : ['path', i], (err as Error).message)
      return []
    }
  })
  return {
    id: raw.id,
    connector,
    methods: new Set(raw.methods),
    paths,
    severity: raw.severity,
    query: constraints(raw.query, false, (f, m) => problem(['query', ...f], m)),
    allowOtherQuery: raw.allow_other_query,
    websocket: raw.websocket,
    headers: constraints(raw.headers, true, (f, m) => problem(['headers', ...f], m)),
    body: raw.body === undefined ? undefined : compileJsonSchema(raw.body, (f, m) => problem(['body', ...f], m)),
    allowBody: raw.allow_body ?? raw.body !== undefined,
    report: raw.mode === 'report',
    ...(raw.approval === undefined ? {} : { approval: compileApproval(raw.approval, idleTimeoutMs, (f, m) => problem(['approval', ...f], m)) }),
  }
}

function constraints(raw: RuleFile['query'], lowerCase: boolean, problem: (f: FieldPath, m: string) => void): ValueConstraint[] {
  const out: ValueConstraint[] = []
  for (const [key, c] of Object.entries(raw)) {
    const name = lowerCase ? key.toLowerCase() : key
    if (out.some((o) => o.name === name)) problem([key], `${name} is constrained twice (names are case-insensitive)`)
    let pattern: RegExp | undefined
    try {
      // Compiled alone first: "a)|(b" would otherwise escape the anchoring group.
      if (c.pattern !== undefined) new RegExp(c.pattern, 'u')
      pattern = c.pattern === undefined ? undefined : new RegExp(`^(?:${c.pattern})$`, 'u')
    } catch (err) {
      const why = (err as Error).message.split(': ').pop()
      problem([key, 'pattern'], `invalid regular expression ${JSON.stringify(c.pattern)}: ${why}`)
    }
    out.push({ name, pattern, required: c.required })
  }
  return out
}
