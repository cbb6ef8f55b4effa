import { createHash, createHmac } from 'node:crypto'

/**
 * AWS Signature Version 4 (header form), written out so that what is signed is exactly what
 * keyvalet sends: the raw path and query it forwards, the headers it forwards. Pure: the caller
 * gives the time. Checked byte for byte against @smithy/signature-v4 in sigv4.test.ts.
 */

export interface AwsKeys {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly sessionToken?: string | undefined
}

export interface SigningScope {
  readonly service: string
  readonly region: string
}

export interface SignableRequest {
  readonly method: string
  /** host[:port] as it goes in the Host header. */
  readonly host: string
  /** Raw path as sent on the wire (percent-encoded as the client encoded it). */
  readonly path: string
  /** Raw query as sent, without '?'. */
  readonly query: string
  /** Lower-case names. x-amz-date, x-amz-security-token and authorization are set by `sign`. */
  readonly headers: Readonly<Record<string, string | string[]>>
  /** The value of x-amz-content-sha256: a hex SHA-256 of the body or one of S3's literals. */
  readonly payloadHash: string
}

export const EMPTY_SHA256 = createHash('sha256').update('').digest('hex')

/** Headers a signature never covers: they are connection-level, or rewritten by the hops between. */
const UNSIGNED = new Set([
  'authorization', 'cache-control', 'connection', 'content-length', 'expect', 'from', 'keep-alive', 'max-forwards',
  'pragma', 'referer', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'x-amzn-trace-id',
])

/** What signing a request leaves for signing its body's chunks: each chains from the one before, the first from the request. */
export interface ChunkSigningContext {
  readonly amzDate: string
  readonly credentialScope: string
  readonly key: Buffer
  /** The request's signature (the seed of the chain). */
  readonly seed: string
}

/**
 * The headers to add to the request (x-amz-date, x-amz-content-sha256, x-amz-security-token with
 * a session token, authorization), and what the body's chunk signatures need
 * (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
 */
export function sign(req: SignableRequest, keys: AwsKeys, scope: SigningScope, now: Date): { headers: Record<string, string>; chunks: ChunkSigningContext } {
  const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, '')
  const day = amzDate.slice(0, 8)
  const added: Record<string, string> = { 'x-amz-date': amzDate, 'x-amz-content-sha256': req.payloadHash }
  if (keys.sessionToken !== undefined) added['x-amz-security-token'] = keys.sessionToken
  const headers = canonicalHeaders({ ...req.headers, ...added, host: req.host })
  const signedHeaders = headers.map(([name]) => name).join(';')
  const canonicalRequest = [
    req.method,
    canonicalPath(req.path, scope.service),
    canonicalQuery(req.query),
    ...headers.map(([name, value]) => `${name}:${value}`),
    '',
    signedHeaders,
    req.payloadHash,
  ].join('\n')
  const credentialScope = `${day}/${scope.region}/${scope.service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, credentialScope, sha256Hex(canonicalRequest)].join('\n')
  const key = signingKey(keys.secretAccessKey, day, scope)
  const signature = hmac(key, stringToSign).toString('hex')
  added.authorization = `AWS4-HMAC-SHA256 Credential=${keys.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
  return { headers: added, chunks: { amzDate, credentialScope, key, seed: signature } }
}

/** The signature of one aws-chunked chunk, given the previous one (the seed for the first). */
export function chunkSignature(ctx: ChunkSigningContext, previous: string, data: Buffer): string {
  return hmac(ctx.key, ['AWS4-HMAC-SHA256-PAYLOAD', ctx.amzDate, ctx.credentialScope, previous, EMPTY_SHA256, sha256Hex(data)].join('\n')).toString('hex')
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** RFC 3986 unreserved characters stay, everything else is %XX (upper-case), as SigV4 wants. */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/**
 * S3 decodes the path it received and encodes each segment once; every other service encodes the
 * path as received once more (so `%20` is signed as `%2520`).
 */
function canonicalPath(path: string, service: string): string {
  const segments = (path === '' ? '/' : path).split('/')
  if (service === 's3') return segments.map((s) => uriEncode(decode(s))).join('/')
  return segments.map(uriEncode).join('/')
}

/** Each name=value decoded and re-encoded, sorted by name then value; a bare name is name=. */
function canonicalQuery(query: string): string {
  if (query === '') return ''
  const pairs = query.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=')
    const [name, value] = eq === -1 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)]
    return [uriEncode(decode(name)), uriEncode(decode(value))] as const
  })
  pairs.sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
  return pairs.map(([n, v]) => `${n}=${v}`).join('&')
}

function canonicalHeaders(headers: Readonly<Record<string, string | string[]>>): [string, string][] {
  const out: [string, string][] = []
  for (const [rawName, raw] of Object.entries(headers)) {
    const name = rawName.toLowerCase()
    if (UNSIGNED.has(name) || name.startsWith('proxy-') || name.startsWith('sec-')) continue
    const value = (Array.isArray(raw) ? raw.join(',') : raw).replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').trim()
    out.push([name, value])
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    // Not valid percent-encoding: sign it as it stands (the service will refuse it as well).
    return text
  }
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest()
}

function signingKey(secret: string, day: string, scope: SigningScope): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, day), scope.region), scope.service), 'aws4_request')
}
