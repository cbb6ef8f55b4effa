import assert from 'node:assert/strict'
import { createServer, type IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { Resolver } from '../../egress/resolver.ts'
import { KeyvaletError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import { TokenHttp } from '../token-http.ts'
import { refreshFailed, requestToken, TokenEndpointError, type ClientAuth } from './token-endpoint.ts'

const connector = (over: Partial<Connector> = {}): Connector => ({
  name: 'crm', upstream: new URL('https://crm.example'), allowInsecure: true, ca: undefined, credential: undefined,
  placeholder: undefined, allowAddresses: ['127.0.0.1/32'], upstreamProxy: undefined, rules: [], ...over,
})
const client: ClientAuth = { clientId: 'kv client', clientSecret: 's3cret:&=', method: 'basic' }

describe('requestToken', () => {
  // The answer for each path; the last request seen, to check what was sent.
  const answers: Record<string, [number, string]> = {
    '/ok': [200, JSON.stringify({ access_token: 'at-1', token_type: 'bearer', expires_in: '3600', refresh_token: 'rt-1', scope: 'a b' })],
    '/bare': [200, JSON.stringify({ access_token: 'at-2' })],
    '/no-token': [200, JSON.stringify({ token_type: 'Bearer' })],
    '/mac': [200, JSON.stringify({ access_token: 'at-3', token_type: 'mac' })],
    '/header-split': [200, JSON.stringify({ access_token: 'at\r\nx-evil: 1' })],
    '/bad-expiry': [200, JSON.stringify({ access_token: 'at-4', expires_in: -5 })],
    '/invalid-grant': [400, JSON.stringify({ error: 'invalid_grant', error_description: 'refresh token rt-secret is revoked' })],
    '/odd-error': [400, JSON.stringify({ error: 'bad"code\u0007' })],
    '/custom-error': [400, JSON.stringify({ error: 'account_locked' })],
    '/echoed-token': [400, JSON.stringify({ error: 'rt-0' })],
    '/dpop': [400, JSON.stringify({ error: 'use_dpop_nonce' })],
    '/html': [502, '<html>gateway rt-secret</html>'],
  }
  let last: { headers: IncomingMessage['headers']; body: string } | undefined
  let base = ''
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      last = { headers: req.headers, body }
      const [status, text] = answers[req.url ?? ''] ?? [404, '']
      res.writeHead(status, { 'content-type': 'application/json' }).end(text)
    })
  })
  const http = new TokenHttp({ resolver: new Resolver() })
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  after(async () => {
    await http.close()
    server.close()
  })
  const call = (path: string, auth = client, c = connector()) => requestToken(http, c, new URL(`${base}${path}`), { grant_type: 'refresh_token', refresh_token: 'rt-0' }, auth)
  const failure = async (promise: Promise<unknown>): Promise<TokenEndpointError> => {
    const err = await promise.then(() => undefined, (e: unknown) => e)
    assert.ok(err instanceof TokenEndpointError, String(err))
    return err
  }

  it('parses a full answer (expires_in as a numeric string) and sends Basic with form-encoded parts', async () => {
    assert.deepEqual(await call('/ok'), { accessToken: 'at-1', refreshToken: 'rt-1', expiresIn: 3600, scope: 'a b' })
    assert.equal(last?.headers.authorization, `Basic ${Buffer.from('kv+client:s3cret%3A%26%3D').toString('base64')}`)
    assert.equal(last?.headers['content-type'], 'application/x-www-form-urlencoded')
    assert.equal(last?.body, 'grant_type=refresh_token&refresh_token=rt-0')
  })

  it('sends client_secret_post in the body, and only client_id for a public client', async () => {
    await call('/bare', { ...client, method: 'post' })
    assert.equal(last?.headers.authorization, undefined)
    assert.match(last?.body ?? '', /&client_id=kv\+client&client_secret=s3cret%3A%26%3D$/)
    assert.deepEqual(await call('/bare', { clientId: 'pub', clientSecret: undefined, method: 'basic' }), { accessToken: 'at-2', refreshToken: undefined, expiresIn: undefined, scope: undefined })
    assert.match(last?.body ?? '', /&client_id=pub$/)
  })

  for (const [path, problem] of [['/no-token', 'access_token'], ['/mac', 'token_type'], ['/header-split', 'access_token'], ['/bad-expiry', 'expires_in']] as const) {
    it(`refuses an invalid answer (${path.slice(1)})`, async () => {
      const err = await failure(call(path))
      assert.equal(err.why, 'token_response_invalid')
      assert.match(String(err.detail.problem), new RegExp(problem))
    })
  }

  it('maps errors to the OAuth code and status, never the body', async () => {
    const grant = await failure(call('/invalid-grant'))
    assert.deepEqual({ why: grant.why, ...grant.detail }, { why: 'token_endpoint_rejected', status: 400, oauth_error: 'invalid_grant' })
    for (const path of ['/odd-error', '/custom-error', '/echoed-token']) assert.deepEqual((await failure(call(path))).detail, { status: 400, oauth_error: 'other' }, path)
    assert.deepEqual((await failure(call('/dpop'))).detail, { status: 400, oauth_error: 'use_dpop_nonce' }, 'a registered extension code is kept')
    const html = await failure(call('/html'))
    assert.deepEqual(html.detail, { status: 502 })
    const mapped = refreshFailed(grant)
    assert.ok(mapped instanceof KeyvaletError)
    assert.equal(mapped.code, 'credential_refresh_failed')
    assert.deepEqual(mapped.detail, { why: 'token_endpoint_rejected', status: 400, oauth_error: 'invalid_grant' })
    assert.ok(!JSON.stringify([mapped.message, mapped.detail, html.message]).includes('rt-secret'))
  })

  it('a failure carries the secrets the request used, out of sight, for the audit to mask', async () => {
    for (const path of ['/invalid-grant', '/no-token', '/html']) {
      const err = await failure(call(path))
      assert.ok(err.secrets.includes('rt-0') && err.secrets.includes('s3cret:&='), path)
      const mapped = refreshFailed(err)
      assert.deepEqual(mapped.secrets, err.secrets)
      assert.ok(!JSON.stringify(mapped).includes('rt-0') && !JSON.stringify(mapped).includes('s3cret'), 'not in what serialises')
    }
  })

  it('refuses cleartext without allow_insecure, a loopback address the connector does not allow, and a closed port', async () => {
    assert.deepEqual((await failure(call('/ok', client, connector({ allowInsecure: false })))).detail, { error: 'cleartext_refused' })
    assert.deepEqual((await failure(call('/ok', client, connector({ allowAddresses: [] })))).detail, { error: 'upstream_address_refused' })
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as { port: number }).port
    await new Promise((r) => closed.close(r))
    const err = await failure(requestToken(http, connector(), new URL(`http://127.0.0.1:${port}/token`), { grant_type: 'client_credentials' }, client))
    assert.equal(err.why, 'token_endpoint_unreachable')
    assert.equal(err.detail.error, 'ECONNREFUSED')
  })
})
