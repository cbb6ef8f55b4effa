import type { IncomingHttpHeaders } from 'node:http'
import { KeyvaletError } from '../../errors.ts'
import type { Sessions } from '../../sessions/sessions.ts'
import type { Stage } from '../pipeline.ts'

/**
 * authenticate: finds the task key — in forward mode in Proxy-Authorization (of the request or of
 * its tunnel's CONNECT, put on the context by the listener); in gateway mode in the slot where the
 * real credential would go: an Authorization bearer or Basic password (git), the access key id
 * of an AWS SigV4 Authorization (AWS SDKs), or an x-api-key /
 * api-key header (model SDKs) — and resolves it to its session, on every request (revocation
 * takes effect at once). Refusals: task_key_missing / malformed / invalid / expired / revoked.
 */
export function createAuthenticate(sessions: Sessions): Stage {
  return {
    name: 'authenticate',
    async run(ctx) {
      const key = ctx.mode === 'forward' ? ctx.proxyKey : taskKeyFrom(ctx.req.headers)
      if (key === undefined) throw new KeyvaletError('task_key_missing')
      try {
        ctx.session = await sessions.authenticate(key)
      } catch (err) {
        // A revoked or expired key still names its session: record who tried, then refuse.
        const id = err instanceof KeyvaletError ? err.detail?.session : undefined
        if (typeof id === 'string') ctx.session = await sessions.get(id)
        throw err
      }
    },
  }
}

export function taskKeyFrom(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization
  if (auth !== undefined) {
    const space = auth.indexOf(' ')
    const scheme = space === -1 ? '' : auth.slice(0, space).toLowerCase()
    const value = auth.slice(space + 1).trim()
    if (scheme === 'bearer' || scheme === 'token') return value
    if (scheme === 'basic') return basicSecret(value)
    // An AWS SDK signs with the task key as its access key id (the signature itself is ignored).
    if (scheme === 'aws4-hmac-sha256') return /(?:^|[\s,])Credential=([^/\s,]+)\//.exec(value)?.[1] ?? value
    return auth.trim()
  }
  for (const name of ['x-api-key', 'api-key'] as const) {
    const value = headers[name]
    if (typeof value === 'string') return value.trim()
  }
  return undefined
}

/** Basic credentials: the password, or the username when the password is empty (some tools). */
function basicSecret(encoded: string): string {
  const decoded = Buffer.from(encoded, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return decoded
  const password = decoded.slice(colon + 1)
  return password === '' ? decoded.slice(0, colon) : password
}

/** The task key from `Proxy-Authorization: Basic base64(task:KEY)` (what clients send for a proxy URL with user info). */
export function proxyKeyFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['proxy-authorization']
  if (value === undefined) return undefined
  const space = value.indexOf(' ')
  const scheme = space === -1 ? '' : value.slice(0, space).toLowerCase()
  const rest = value.slice(space + 1).trim()
  if (scheme === 'basic') return basicSecret(rest)
  if (scheme === 'bearer') return rest
  return undefined
}
