import { credentialKind } from '../../credentials/registry.ts'
import type { IncomingHttpHeaders } from 'node:http'
import { KeyvaletError } from '../../errors.ts'
import type { Policy } from '../../model/policy.ts'
import type { Sessions } from '../../sessions/sessions.ts'
import type { RequestContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'

/**
 * authenticate: finds the task key — in forward mode in Proxy-Authorization (of the tunnel's
 * CONNECT, put on the context by the listener, or of the request itself); in gateway mode in the
 * slot where the real credential would go: an Authorization bearer or Basic password (git), the
 * access key id of an AWS SigV4 Authorization (AWS SDKs), or an x-api-key / api-key header (model
 * SDKs) — and resolves it to its session, on every request (revocation takes effect at once).
 * Refusals: task_key_missing / malformed / invalid / expired / revoked; on the gateway, for a
 * connector whose slot is HTTP Basic, with a Basic challenge (git sends no password without one).
 */
export function createAuthenticate(sessions: Sessions, policy: Policy): Stage<RequestContext> {
  return {
    name: 'authenticate',
    async run(ctx) {
      if (ctx.mode === 'gateway') ctx.challenge = basicChallenge(policy, ctx.req.url ?? '')
      const key = ctx.mode === 'forward' ? (ctx.proxyKey ?? proxyKeyFrom(ctx.req.headers)) : taskKeyFrom(ctx.req.headers)
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

/**
 * The WWW-Authenticate challenge of a gateway refusal, when the connector the path names takes its
 * credential as HTTP Basic (a `basic` credential, or an Authorization header template "Basic …").
 */
function basicChallenge(policy: Policy, url: string): string | undefined {
  const name = /^\/([^/?#]+)/.exec(url)?.[1]
  const binding = name === undefined ? undefined : policy.connectors.get(name)?.credential
  if (binding === undefined) return undefined
  return credentialKind(binding.kind).basic(binding) ? 'Basic realm="keyvalet", charset="UTF-8"' : undefined
}

/** The gateway's task key, or undefined when no slot carries one; throws task_key_malformed for Basic credentials that do not parse. */
export function taskKeyFrom(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization
  if (auth !== undefined) {
    const space = auth.indexOf(' ')
    const scheme = space === -1 ? '' : auth.slice(0, space).toLowerCase()
    const value = auth.slice(space + 1).trim()
    if (scheme === 'bearer' || scheme === 'token') return value
    if (scheme === 'basic') {
      const credentials = basicCredentials(auth)
      if (credentials === undefined) throw new KeyvaletError('task_key_malformed', { detail: { authorization: 'not Basic base64(user:password)' } })
      // The password, or the user when the password is empty (SDKs that send the key as user).
      return credentials.password === '' ? credentials.user : credentials.password
    }
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

/**
 * The task key from `Proxy-Authorization: Basic base64(user:KEY)`, what clients send for a proxy
 * URL `http://task:KEY@keyvalet:PORT`, and nothing else: any user, the key as the password. Throws
 * task_key_missing without the header and task_key_malformed for any other form.
 */
export function proxyKeyFrom(headers: IncomingHttpHeaders): string {
  const value = headers['proxy-authorization']
  if (value === undefined) throw new KeyvaletError('task_key_missing', { message: 'A task key is required: give it as the proxy password (HTTPS_PROXY=http://task:KEY@host:port).' })
  const credentials = basicCredentials(value)
  if (credentials === undefined || credentials.password === '') {
    throw new KeyvaletError('task_key_malformed', {
      message: 'Proxy-Authorization must be Basic base64(task:KEY), as clients send for a proxy URL http://task:KEY@host:port.',
      detail: { proxy_authorization: 'not Basic base64(user:key)' },
    })
  }
  return credentials.password
}

const BASIC = /^basic +([A-Za-z0-9+/]+={0,2})$/i
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * `Basic <token68>` (RFC 7617): the scheme in any case, spaces, then base64 of UTF-8 `user:password`
 * in its one canonical form (padded, no stray bits: it must re-encode to itself) and nothing after
 * it. A lenient decoder would skip what it cannot read, so junk after the key would pass.
 */
function basicCredentials(value: string): { user: string; password: string } | undefined {
  const token = BASIC.exec(value)?.[1]
  if (token === undefined) return undefined
  const bytes = Buffer.from(token, 'base64')
  if (bytes.toString('base64') !== token) return undefined
  let text: string
  try {
    text = UTF8.decode(bytes)
  } catch {
    return undefined
  }
  const colon = text.indexOf(':')
  if (colon === -1) return undefined
  return { user: text.slice(0, colon), password: text.slice(colon + 1) }
}
