import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { Received } from './upstream.ts'

/** Headers keyvalet or the transport sets on every forwarded request, outside what an approval's digest covers (docs/approvals.md). */
const TRANSPORT = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'traceparent'])

/**
 * The digest of a request as an upstream received it, computed here from docs/approvals.md's
 * definition (not with keyvalet's code): `credentialHeaders` are the ones keyvalet added after the
 * approval (the credential's slot).
 */
export function receivedDigest(origin: string, received: Received, credentialHeaders: readonly string[]): string {
  const hash = createHash('sha256')
  hash.update(`${received.method} ${origin}${received.url}\n`)
  const headers: IncomingHttpHeaders = received.headers
  const names = Object.keys(headers).filter((n) => !TRANSPORT.has(n) && !credentialHeaders.includes(n)).sort()
  for (const name of names) {
    const value = headers[name]
    for (const one of Array.isArray(value) ? value : [value ?? '']) hash.update(`${name}: ${one}\n`)
  }
  hash.update('\n')
  hash.update(received.body)
  return `sha256:${hash.digest('hex')}`
}

/** Polls `read` until it returns something other than undefined, or fails after `ms`. */
export async function eventually<T>(read: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const value = await read()
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
