import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { exportJWK, generateKeyPair } from 'jose'
import Provider from 'oidc-provider'

/** What the real authorization server granted, counted from its own events. */
export interface GrantCounts { authorization_code: number; refresh_token: number; client_credentials: number; failed: number }

export interface RealAuthorizationServer {
  readonly issuer: string
  readonly authorizeUrl: string
  readonly tokenUrl: string
  readonly revocationUrl: string
  /** A confidential client (authorization code with PKCE, refresh, client credentials). */
  readonly clientId: string
  readonly clientSecret: string
  /** The account the next sign-in logs in as (the "browser" never types). */
  loginAs: string
  readonly counts: GrantCounts
  /** Every refresh token presented at the token endpoint, in order (successful or not). */
  readonly refreshTokensPresented: string[]
  /**
   * The resource server's check of a bearer token: the subject (an account id, or `client:<id>`
   * for client credentials) when the provider knows it as a live access token, else undefined.
   */
  check(token: string): Promise<string | undefined>
  /** RFC 7009 revocation at the provider, as the client would ask for it. */
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<void>
  /** Plays the browser: follows the authorization URL through login and consent to the redirect URI. */
  signIn(authorizeUrl: string): Promise<Response>
  close(): Promise<void>
}

/** The resource keyvalet's connectors reach; every access token is issued for it. */
export const RESOURCE = 'https://crm.example/'

/**
 * oidc-provider, the certified OpenID/OAuth 2.0 server, on 127.0.0.1:0: PKCE required, refresh
 * tokens rotated on every use, client credentials and revocation enabled, opaque access tokens for
 * one resource server. Login and consent are answered by an interaction route that signs in as
 * `loginAs` and grants what was asked.
 */
export async function startRealAuthorizationServer(opts: { clientSecret: string; accessTtlS?: number }): Promise<RealAuthorizationServer> {
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('authorization server has no address')
  const issuer = `http://127.0.0.1:${address.port}`
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const clientId = 'keyvalet-crm'
  const accessTtlS = opts.accessTtlS ?? 600
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: opts.clientSecret,
      // native: a loopback redirect URI matches on any port (RFC 8252 §7.3), as keyvalet's connect uses.
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test' }] },
    cookies: { keys: ['a test cookie key that is long enough'] },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: { AccessToken: accessTtlS, ClientCredentials: accessTtlS, RefreshToken: 86_400, Grant: 86_400, Interaction: 600, Session: 600, AuthorizationCode: 60 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'contacts.read contacts.write reports', accessTokenFormat: 'opaque', accessTokenTTL: accessTtlS }),
      },
    },
  })
  const counts: GrantCounts = { authorization_code: 0, refresh_token: 0, client_credentials: 0, failed: 0 }
  const refreshTokensPresented: string[] = []
  const presented = (ctx: { oidc: { params?: Record<string, unknown> } }): void => {
    const refresh = ctx.oidc.params?.refresh_token
    if (ctx.oidc.params?.grant_type === 'refresh_token' && typeof refresh === 'string') refreshTokensPresented.push(refresh)
  }
  provider.on('grant.success', (ctx) => {
    presented(ctx)
    const type = ctx.oidc.params?.grant_type as keyof GrantCounts
    if (type in counts) counts[type]++
  })
  provider.on('grant.error', (ctx) => {
    presented(ctx)
    counts.failed++
  })

  const state = { loginAs: 'alice' }
  const callback = provider.callback()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer)
    if (url.pathname.startsWith('/interaction/')) return void interact(provider, state.loginAs, req, res).catch(() => {
      res.statusCode = 500
      res.end()
    })
    return void callback(req, res)
  })

  return {
    issuer,
    authorizeUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    revocationUrl: `${issuer}/token/revocation`,
    clientId,
    clientSecret: opts.clientSecret,
    get loginAs() { return state.loginAs },
    set loginAs(v: string) { state.loginAs = v },
    counts,
    refreshTokensPresented,
    async check(token) {
      const access = await provider.AccessToken.find(token)
      if (access !== undefined && !access.isExpired) return access.accountId
      const client = await provider.ClientCredentials.find(token)
      return client !== undefined && !client.isExpired ? `client:${client.clientId}` : undefined
    },
    async revoke(token, hint) {
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(clientId, opts.clientSecret) },
        body: new URLSearchParams({ token, token_type_hint: hint }),
      })
      if (res.status !== 200) throw new Error(`revocation answered ${res.status}: ${await res.text()}`)
    },
    signIn: (authorizeUrl) => followWithCookies(authorizeUrl),
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

/** RFC 6749 §2.3.1: client id and secret are form-encoded before they are joined and base64-encoded. */
export function basicAuth(id: string, secret: string): string {
  const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)
  return `Basic ${Buffer.from(`${form(id)}:${form(secret)}`).toString('base64')}`
}

/** Login as `account`, then consent to every scope and resource the request asked for. */
async function interact(provider: Provider, account: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res)
  if (details.prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: account } }, { mergeWithLastSubmission: false })
  }
  const accountId = details.session?.accountId ?? account
  const grant = details.grantId === undefined
    ? new provider.Grant({ accountId, clientId: String(details.params.client_id) })
    : await provider.Grant.find(details.grantId)
  if (grant === undefined) throw new Error('grant not found')
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> }
  if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '))
  const grantId = await grant.save()
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
}

/** A browser reduced to what the flow needs: manual redirects and a cookie jar (bounded hops). */
async function followWithCookies(start: string): Promise<Response> {
  const jar = new Map<string, string>()
  let url = start
  for (let hop = 0; hop < 12; hop++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await fetch(url, { redirect: 'manual', headers: cookie === '' ? {} : { cookie } })
    for (const set of res.headers.getSetCookie()) {
      const [pair = ''] = set.split(';')
      const eq = pair.indexOf('=')
      if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
    const location = res.headers.get('location')
    if (res.status < 300 || res.status >= 400 || location === null) return res
    await res.arrayBuffer()
    url = new URL(location, url).href
  }
  throw new Error('too many redirects')
}
