import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { SandboxRequest } from './exchange.ts'
import { isRoutingHeader } from './routing-headers.ts'

/** RFC 9110 §7.6.1 connection-specific fields, plus the proxy ones. Never forwarded either way. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
])

/**
 * Request headers the sandbox may never send upstream, whatever a rule says: every slot a task key
 * can travel in (the real credential is set after these are gone) and the sandbox's cookies.
 */
const CREDENTIAL_SLOTS: ReadonlySet<string> = new Set(['authorization', 'x-api-key', 'api-key', 'cookie'])

/**
 * Headers keyvalet writes itself: the upstream's Host, the body's framing, `identity` coding (so
 * redaction sees the response as written); `expect` is answered by keyvalet (undici refuses it).
 */
const REWRITTEN: ReadonlySet<string> = new Set(['host', 'expect', 'content-length', 'accept-encoding'])

/** Names listed in the Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionListed(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>()
  if (value === undefined) return out
  for (const part of (Array.isArray(value) ? value : [value]).join(',').split(',')) {
    const name = part.trim().toLowerCase()
    if (name) out.add(name)
  }
  return out
}

/**
 * The sandbox's headers as they may go upstream, before any credential is injected: without
 * hop-by-hop headers (and those named in Connection), credential slots, the headers keyvalet
 * rewrites, and routing headers (routing-headers.ts) except those in `letThrough` (the names the
 * allowing rule constrains). `extraSlots` are the connector's own credential headers (its
 * credential's, its assertion's), removed whatever their names.
 */
export function outboundRequestHeaders(incoming: IncomingHttpHeaders, extraSlots: readonly (string | undefined)[], letThrough: ReadonlySet<string> = new Set()): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection)
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(incoming)) {
    // An HTTP/2 request's pseudo-headers (:method, :path, :authority, :scheme) are its request line, which keyvalet writes itself.
    if (value === undefined || name.startsWith(':') || HOP_BY_HOP.has(name) || CREDENTIAL_SLOTS.has(name) || REWRITTEN.has(name) || listed.has(name) || extraSlots.includes(name)) continue
    if (isRoutingHeader(name) && !letThrough.has(name)) continue
    out[name] = value
  }
  // `te: trailers` from an HTTP/2 client (it has pseudo-headers) says it takes trailers, which keyvalet
  // relays to it (gRPC requires the field). An HTTP/1.1 client's is not passed on: its answer goes without trailers.
  if (incoming[':method'] !== undefined && typeof incoming.te === 'string' && incoming.te.trim().toLowerCase() === 'trailers') out.te = 'trailers'
  // Redaction must see the response as the upstream wrote it, so ask for no content coding.
  out['accept-encoding'] = 'identity'
  return out
}

/** The upstream's response headers as they may go back to the sandbox (hop-by-hop removed). */
export function inboundResponseHeaders(upstream: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const listed = connectionListed(upstream.connection)
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || name.startsWith(':') || HOP_BY_HOP.has(name) || listed.has(name)) continue
    out[name] = value
  }
  return out
}

/**
 * Whether a request has a body. HTTP/1.1: its framing headers say so. HTTP/2 frames a body with
 * DATA, needing neither header (gRPC sends neither): a body follows unless the HEADERS frame ended
 * the stream (RFC 9113 §8.1) or it declares content-length 0.
 */
export function requestCarriesBody(req: SandboxRequest): boolean {
  if (req.httpVersionMajor !== 2) return carriesBody(req.headers)
  return req.endAfterHeaders !== true && req.headers['content-length'] !== '0'
}

/** Whether the sandbox has sent its whole request: over HTTP/2 a stream without a body has, though `complete` waits until something reads it. */
export function requestArrived(req: SandboxRequest): boolean {
  return req.complete || (req.httpVersionMajor === 2 && !requestCarriesBody(req))
}

/** Whether HTTP/1.1 headers declare a body (Transfer-Encoding, or a Content-Length other than 0). */
export function carriesBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

/** Why the body cannot be read as JSON (to be `checked` by a rule or `rewritten` for attribution), or undefined. */
export function jsonBodyProblem(headers: IncomingHttpHeaders, purpose: 'checked' | 'rewritten'): string | undefined {
  const type = (headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
  if (type !== 'application/json' && !type.endsWith('+json')) return 'content-type is not JSON'
  if (headers['content-encoding'] !== undefined) return `a content-coded body cannot be ${purpose}`
  return undefined
}
