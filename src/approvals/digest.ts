import { createHash } from 'node:crypto'

/**
 * What an approval covers: the exact request that will be forwarded, minus what keyvalet adds
 * after the yes (the credential, the W3C traceparent of its span) and the framing (the length is
 * the body's).
 */
export interface ApprovedRequest {
  readonly method: string
  /** Upstream origin, path and query exactly as they will be sent. */
  readonly url: string
  /** Lower-case names: the headers that will be forwarded (approvals/digest.ts leaves out NOT_DIGESTED). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>
  readonly body: Buffer
}

/** Headers keyvalet or the transport sets, whatever the sandbox sent: never part of the digest. */
const NOT_DIGESTED = new Set(['traceparent', 'content-length', 'transfer-encoding', 'host', 'connection'])

/** The names of the headers a digest covers, sorted. */
export function digestedHeaders(headers: ApprovedRequest['headers']): string[] {
  return Object.keys(headers).filter((name) => !NOT_DIGESTED.has(name)).sort()
}

/**
 * `sha256:` and the hex SHA-256 of the request in this canonical form (documented in
 * docs/approvals.md, so a receiver can compute it from what it got):
 *
 *   METHOD SP URL LF
 *   name ":" SP value LF        each digested header, names sorted, a repeated header's values in order
 *   LF
 *   body bytes
 *
 * Names and values cannot hold LF (the HTTP parser refuses them), so the form is unambiguous.
 */
export function requestDigest(request: ApprovedRequest): string {
  const hash = createHash('sha256')
  hash.update(`${request.method} ${request.url}\n`)
  for (const name of digestedHeaders(request.headers)) {
    const value = request.headers[name]
    for (const one of typeof value === 'string' ? [value] : value ?? []) hash.update(`${name}: ${one}\n`)
  }
  hash.update('\n')
  hash.update(request.body)
  return `sha256:${hash.digest('hex')}`
}
