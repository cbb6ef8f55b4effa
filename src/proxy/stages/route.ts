import type { IncomingHttpHeaders } from 'node:http'
import { credentialKind } from '../../credentials/registry.ts'
import { KeyvaletError } from '../../errors.ts'
import { normalisePath, splitTarget } from '../../policy/path.ts'
import type { Connector, Policy } from '../../model/policy.ts'
import { TASK_KEY_PATTERN } from '../../sessions/task-key.ts'
import type { ForwardTarget, RequestContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'

/** Headers where a credential (task key or placeholder) may legitimately travel, per listener. */
const GATEWAY_SLOTS = new Set(['authorization', 'x-api-key', 'api-key'])
const FORWARD_SLOTS = new Set(['proxy-authorization'])
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'api-key'])

/**
 * route: which connector, and the strictly normalised path below it. Gateway mode:
 * `/<connector>/<path>`. Forward mode: the connector whose upstream origin is the request's and
 * whose base path prefixes it (the longest wins). The path decided on is the path sent: ambiguous
 * paths are refused (path_ambiguous), never repaired. Then a task key or a placeholder anywhere but
 * its slot is refused as an exfiltration attempt.
 */
export function createRoute(policy: Policy): Stage<RequestContext> {
  const byOrigin = new Map<string, Connector[]>()
  for (const connector of policy.connectors.values()) {
    const list = byOrigin.get(connector.upstream.origin) ?? []
    list.push(connector)
    list.sort((a, b) => baseSegments(b).length - baseSegments(a).length)
    byOrigin.set(connector.upstream.origin, list)
  }
  const placeholders = [...policy.connectors.values()].flatMap((c) => (c.placeholder === undefined ? [] : [{ connector: c.name, value: c.placeholder }]))
  return {
    name: 'route',
    run(ctx) {
      if (ctx.mode === 'forward') routeForward(ctx, byOrigin)
      else routeGateway(ctx, policy)
      refuseMisplaced(ctx, placeholders)
    },
  }
}

function routeGateway(ctx: RequestContext, policy: Policy): void {
  const { rawPath, rawQuery } = splitTarget(ctx.req.url ?? '')
  const { segments } = normalisePath(rawPath)
  const name = segments[0] ?? ''
  const connector = policy.connectors.get(name)
  if (connector === undefined) throw new KeyvaletError('connector_unknown', { detail: { connector: name.slice(0, 64) } })
  ctx.connector = connector
  // What follows the raw first segment, however it was spelled: the path sent is the path decided.
  const end = rawPath.indexOf('/', 1)
  const rest = end < 0 ? '' : rawPath.slice(end)
  ctx.segments = segments.length > 1 ? segments.slice(1) : ['']
  ctx.path = connector.upstream.pathname.replace(/\/$/, '') + (rest === '' ? '/' : rest)
  ctx.rawQuery = rawQuery
}

function routeForward(ctx: RequestContext, byOrigin: ReadonlyMap<string, Connector[]>): void {
  const target = ctx.target
  if (target === undefined) throw new Error('forward request without a target')
  checkHost(requestAuthority(ctx.req.headers), target)
  const { rawPath, rawQuery } = splitTarget(target.requestTarget)
  const { segments } = normalisePath(rawPath)
  const connector = byOrigin.get(target.origin)?.find((c) => startsWith(segments, baseSegments(c)))
  if (connector === undefined) throw new KeyvaletError('destination_refused', { detail: { origin: target.origin.slice(0, 300) } })
  ctx.connector = connector
  const rest = segments.slice(baseSegments(connector).length)
  ctx.segments = rest.length === 0 ? [''] : rest
  ctx.path = rawPath
  ctx.rawQuery = rawQuery
}

/**
 * Whom the request names as its destination: Host, or over HTTP/2 `:authority`, which stands for
 * it (RFC 9113 §8.3.1). A request carrying both must have them agree: the upstream might read
 * either one.
 */
function requestAuthority(headers: IncomingHttpHeaders): string | undefined {
  const pseudo = headers[':authority']
  const authority = typeof pseudo === 'string' ? pseudo : undefined
  const host = headers.host
  if (authority === undefined) return host
  if (host !== undefined && host.trim().toLowerCase() !== authority.trim().toLowerCase()) {
    throw new KeyvaletError('host_mismatch', { detail: { host: host.slice(0, 300), authority: authority.slice(0, 300) } })
  }
  return authority
}

/** Host must name the destination: inside a tunnel the CONNECT authority, else the absolute-form URL's. */
function checkHost(host: string | undefined, target: ForwardTarget): void {
  if (host === undefined || normaliseAuthority(host, target.origin.startsWith('https:') ? 443 : 80) !== target.authority) {
    throw new KeyvaletError('host_mismatch', { detail: { host: String(host ?? '').slice(0, 300), expected: target.authority } })
  }
}

/** Lower-case host[:port] with the scheme's default port dropped, as URL.host writes it. */
export function normaliseAuthority(authority: string, defaultPort: number): string {
  const lower = authority.trim().toLowerCase()
  const suffix = `:${defaultPort}`
  return lower.endsWith(suffix) ? lower.slice(0, -suffix.length) : lower
}

/** The normalised segments of a connector's upstream base path (none for `/`). */
export function baseSegments(connector: Connector): string[] {
  const base = connector.upstream.pathname.replace(/\/$/, '')
  return base === '' ? [] : normalisePath(base).segments
}

export function startsWith(segments: readonly string[], prefix: readonly string[]): boolean {
  return prefix.every((s, i) => segments[i] === s)
}

/**
 * A task key may appear only in its listener's slot; a placeholder only in the credential slot of
 * the request to its own connector. Anywhere else (path, query, another header, another host)
 * the request is refused before anything is sent.
 */
function refuseMisplaced(ctx: RequestContext, placeholders: readonly { connector: string; value: string }[]): void {
  const target = ctx.mode === 'forward' ? (ctx.target?.requestTarget ?? '') : (ctx.req.url ?? '')
  const keySlots = ctx.mode === 'forward' ? FORWARD_SLOTS : GATEWAY_SLOTS
  const own = ctx.connector
  const slot = own?.credential === undefined ? undefined : credentialKind(own.credential.kind).slot(own.credential).header
  const check = (text: string, header?: string): void => {
    const where = header === undefined ? 'target' : 'header'
    const plain = text.includes('%') ? decodeLoosely(text) : text
    if ((header === undefined || !keySlots.has(header)) && hasKey(plain)) {
      throw new KeyvaletError('task_key_misplaced', { detail: { where, ...(header === undefined ? {} : { header }) } })
    }
    for (const p of placeholders) {
      if (!plain.includes(p.value)) continue
      const inSlot = header !== undefined && p.connector === own?.name && (CREDENTIAL_HEADERS.has(header) || header === slot)
      if (!inSlot) throw new KeyvaletError('placeholder_misplaced', { detail: { where, placeholder_of: p.connector, ...(header === undefined ? {} : { header }) } })
    }
  }
  check(target)
  const headers = ctx.req.headers
  for (const name in headers) {
    const value = headers[name]
    if (typeof value === 'string') check(value, name)
    else if (value !== undefined) for (const v of value) check(v, name)
  }
}

function hasKey(text: string): boolean {
  TASK_KEY_PATTERN.lastIndex = 0
  return TASK_KEY_PATTERN.test(text)
}

/** Percent-decoding that never throws: a key hidden behind escapes is still a key. */
function decodeLoosely(text: string): string {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}
