import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/** RFC 9110 §7.6.1 connection-specific fields, plus the proxy ones. Never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])

/**
 * Request headers the sandbox may never send upstream: every slot a task key can travel in (the
 * real credential is set after these are gone), overrides some frameworks honour over the method
 * or path keyvalet decided on, and forwarding metadata that would let the sandbox speak for keyvalet.
 * `expect` is handled by keyvalet itself (undici refuses to send it).
 */
const REQUEST_DROPPED = new Set([
  'host', 'authorization', 'x-api-key', 'api-key', 'cookie',
  'x-http-method-override', 'x-http-method', 'x-method-override',
  'x-original-url', 'x-rewrite-url', 'x-original-uri', 'x-override-url',
  'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port',
  'x-forwarded-prefix', 'x-real-ip', 'via', 'expect', 'content-length', 'accept-encoding',
])

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
 * The sandbox's headers as they may go upstream, before any credential is injected.
 * `extraSlots` are the connector's own credential headers (its credential's, its assertion's),
 * removed whatever their names.
 */
export function outboundRequestHeaders(incoming: IncomingHttpHeaders, extraSlots: readonly (string | undefined)[]): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection)
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || REQUEST_DROPPED.has(name) || listed.has(name) || extraSlots.includes(name)) continue
    out[name] = value
  }
  // Redaction must see the response as the upstream wrote it, so ask for no content coding.
  out['accept-encoding'] = 'identity'
  return out
}

/** The upstream's response headers as they may go back to the sandbox (hop-by-hop removed). */
export function inboundResponseHeaders(upstream: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const listed = connectionListed(upstream.connection)
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue
    out[name] = value
  }
  return out
}

/** Whether the request declares a body (Transfer-Encoding, or a Content-Length other than 0). */
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
