import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Handler } from './upstream.ts'

/** What the test authorization server counts, by grant type ('token' = every /token request). */
export interface OAuthCounts { token: number; authorization_code: number; refresh_token: number; client_credentials: number; refresh_reused: number }

export interface OAuthServer {
  readonly url: string
  readonly authorizeUrl: string
  readonly tokenUrl: string
  readonly clientId: string
  readonly clientSecret: string
  /** Who "signs in" at /authorize next. */
  loginAs: string
  /** Lifetime of access tokens issued from now on. */
  accessTtlS: number
  /**
   * Makes every refresh_token grant fail with this OAuth error (500 for server_error), until reset
   * to false; 'refresh_token_as_error' answers 400 with the presented refresh token as the error code.
   */
  failRefresh: false | 'invalid_grant' | 'server_error' | 'refresh_token_as_error'
  readonly counts: OAuthCounts
  /** Every refresh token presented at /token, in order. */
  readonly refreshTokensPresented: string[]
  /** Runs once, before the next refresh_token grant is processed (another client racing this one). */
  beforeRefresh: ((refreshToken: string) => Promise<void>) | undefined
  /** The form of the last /token request. */
  lastForm: URLSearchParams | undefined
  /** The subject (user, or client:<id>) an access token stands for while it is valid, else undefined. */
  check(accessToken: string): string | undefined
  /** Revokes an access token server-side: the API answers 401 to it from now on. */
  revoke(accessToken: string): void
  /** The access tokens issued to a subject, oldest first. */
  issuedTo(subject: string): string[]
  /** An upstream API handler (for startUpstream) that accepts only currently valid access tokens and echoes the token it saw. */
  readonly api: Handler
  close(): Promise<void>
}

interface Code { user: string; redirectUri: string; challenge: string; scope: string; used: boolean }
interface Access { subject: string; expiresAt: number; revoked: boolean }

/**
 * A small OAuth 2 authorization server on 127.0.0.1:0 for tests: /authorize redirects at once
 * with a code (signed in as `loginAs`), /token takes authorization_code (PKCE S256 checked),
 * refresh_token (rotating: each use returns a new one and invalidates the old; reuse fails with
 * invalid_grant) and client_credentials (client secret checked). Clients authenticate with Basic
 * or in the form body. Expiry follows `clock`.
 */
export async function startOAuthServer(opts: { clock?: () => number; accessTtlS?: number } = {}): Promise<OAuthServer> {
  const clock = opts.clock ?? Date.now
  const codes = new Map<string, Code>()
  const access = new Map<string, Access>()
  const refresh = new Map<string, { user: string; scope: string; used: boolean }>()
  const counts: OAuthCounts = { token: 0, authorization_code: 0, refresh_token: 0, client_credentials: 0, refresh_reused: 0 }
  const random = (prefix: string): string => `${prefix}${randomBytes(12).toString('hex')}`

  const issue = (subject: string, scope: string, withRefresh: boolean): Record<string, unknown> => {
    const token = random('at_')
    access.set(token, { subject, expiresAt: clock() + state.accessTtlS * 1000, revoked: false })
    const body: Record<string, unknown> = { access_token: token, token_type: 'Bearer', expires_in: state.accessTtlS, scope }
    if (withRefresh) {
      const rt = random('rt_')
      refresh.set(rt, { user: subject, scope, used: false })
      body.refresh_token = rt
    }
    return body
  }

  const token = (form: URLSearchParams, req: IncomingMessage): [number, Record<string, unknown>] => {
    counts.token++
    state.lastForm = form
    let [id, secret] = [form.get('client_id'), form.get('client_secret')]
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (basic !== undefined) [id, secret] = Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent) as [string, string]
    if (id !== state.clientId || secret !== state.clientSecret) return [401, { error: 'invalid_client', error_description: `client ${id} secret ${secret} refused` }]
    const grant = form.get('grant_type')
    if (grant === 'authorization_code') {
      counts.authorization_code++
      const code = codes.get(form.get('code') ?? '')
      const verifier = form.get('code_verifier') ?? ''
      if (code === undefined || code.used || code.redirectUri !== form.get('redirect_uri')) return [400, { error: 'invalid_grant' }]
      code.used = true
      if (createHash('sha256').update(verifier).digest('base64url') !== code.challenge) return [400, { error: 'invalid_grant', error_description: 'PKCE verification failed' }]
      return [200, issue(code.user, code.scope, true)]
    }
    if (grant === 'refresh_token') {
      counts.refresh_token++
      const presented = form.get('refresh_token') ?? ''
      state.refreshTokensPresented.push(presented)
      if (state.failRefresh === 'server_error') return [500, { error: 'server_error', error_description: `cannot refresh ${presented}` }]
      if (state.failRefresh === 'invalid_grant') return [400, { error: 'invalid_grant', error_description: `refresh token ${presented} is no good` }]
      if (state.failRefresh === 'refresh_token_as_error') return [400, { error: presented }]
      const rt = refresh.get(presented)
      if (rt === undefined) return [400, { error: 'invalid_grant' }]
      if (rt.used) {
        counts.refresh_reused++
        return [400, { error: 'invalid_grant', error_description: 'refresh token reused' }]
      }
      rt.used = true
      return [200, issue(rt.user, rt.scope, true)]
    }
    if (grant === 'client_credentials') {
      counts.client_credentials++
      return [200, issue(`client:${id}`, form.get('scope') ?? '', false)]
    }
    return [400, { error: 'unsupported_grant_type' }]
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const p = url.searchParams
      const redirect = new URL(p.get('redirect_uri') ?? '')
      if (p.get('client_id') !== state.clientId || p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256' || redirect.hostname !== '127.0.0.1') {
        res.writeHead(400).end('bad authorization request')
        return
      }
      const code = random('code_')
      codes.set(code, { user: state.loginAs, redirectUri: redirect.href, challenge: p.get('code_challenge') ?? '', scope: p.get('scope') ?? '', used: false })
      redirect.searchParams.set('code', code)
      redirect.searchParams.set('state', p.get('state') ?? '')
      res.writeHead(302, { location: redirect.href }).end()
      return
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString())
        const hook = form.get('grant_type') === 'refresh_token' ? state.beforeRefresh : undefined
        if (hook !== undefined) state.beforeRefresh = undefined
        void (hook?.(form.get('refresh_token') ?? '') ?? Promise.resolve()).then(() => {
          const [status, body] = token(form, req)
          res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body))
        })
      })
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('oauth server has no address')
  const base = `http://127.0.0.1:${address.port}`

  const check = (t: string): string | undefined => {
    const a = access.get(t)
    return a === undefined || a.revoked || a.expiresAt <= clock() ? undefined : a.subject
  }
  const state: OAuthServer = {
    url: base, authorizeUrl: `${base}/authorize`, tokenUrl: `${base}/token`,
    clientId: 'kv-client', clientSecret: 'kv-client-secret-0123456789',
    loginAs: 'alice', accessTtlS: opts.accessTtlS ?? 600, failRefresh: false, counts, refreshTokensPresented: [], lastForm: undefined, beforeRefresh: undefined,
    check,
    revoke(t) {
      const a = access.get(t)
      if (a !== undefined) a.revoked = true
    },
    issuedTo: (subject) => [...access.entries()].filter(([, a]) => a.subject === subject).map(([t]) => t),
    api(req, res, received) {
      const presented = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
      const subject = check(presented)
      const body = subject === undefined ? JSON.stringify({ error: 'invalid_token' }) : JSON.stringify({ subject, token: presented, path: received.url })
      res.writeHead(subject === undefined ? 401 : 200, { 'content-type': 'application/json', ...(subject === undefined ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}) })
      res.end(body)
    },
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
  return state
}
