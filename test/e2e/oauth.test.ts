import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { readUserToken, recordFromGrant, writeUserToken } from '../../src/credentials/oauth/user-tokens.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import { inProcessCli } from '../helpers/capture.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startOAuthServer, type OAuthServer } from '../helpers/oauth-server.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

interface Answer { status: number; headers: Record<string, unknown>; text: string }

describe('OAuth user tokens and client credentials, end to end', () => {
  let oauth: OAuthServer
  let api: Upstream
  let kv: TestKeyvalet

  before(async () => {
    oauth = await startOAuthServer({ clock: () => kv?.now ?? Date.now(), accessTtlS: 600 })
    api = await startUpstream({ handler: oauth.api })
    const local = `allow_insecure: true
    allow_addresses: [127.0.0.1/32]`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  crm:
    upstream: ${api.url}/crm
    ${local}
    credential:
      source: oauth_user
      inject: bearer
      oauth_user:
        authorize_url: ${oauth.authorizeUrl}
        token_url: ${oauth.tokenUrl}
        client_id: ${oauth.clientId}
        client_secret: crm-client-secret
        scopes: [contacts.read, contacts.write]
        refresh_before_s: 60
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
      - { id: write, methods: [POST], path: /**, severity: write }
  svc:
    upstream: ${api.url}/svc
    ${local}
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: svc-client-secret, scopes: [reports], audience: "https://svc.example", client_auth: post }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
  svc-bad:
    upstream: ${api.url}/svc
    ${local}
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: svc-wrong-secret }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`)
    await kv.setSecret('crm-client-secret', oauth.clientSecret)
    await kv.setSecret('svc-client-secret', oauth.clientSecret)
    await kv.setSecret('svc-wrong-secret', 'not-the-client-secret')
  })
  after(async () => {
    await kv.close()
    await api.close()
    await oauth.close()
  })

  const keys = new Map<string, string>()
  async function keyFor(user: string): Promise<string> {
    let key = keys.get(user)
    if (key === undefined) {
      const grants = ['crm:write', 'svc:read', 'svc-bad:read'].map(parseGrant)
      key = (await kv.runtime.sessions.create({ agent: 'agent-1', user, workspace: 'acme', task: 'task-1', grants, ttlMs: 30 * 86_400_000 })).key
      keys.set(user, key)
    }
    return key
  }

  async function send(user: string, path: string, init: { method?: 'GET' | 'POST'; body?: Readable } = {}): Promise<Answer> {
    const res = await request(`${kv.url}${path}`, { method: init.method ?? 'GET', headers: { authorization: `Bearer ${await keyFor(user)}` }, body: init.body ?? null })
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
  }

  const cli = (args: string[]) => inProcessCli(kv, args)

  /** `keyvalet oauth connect` for `user`, the browser played by fetch following the redirect to the callback. */
  async function connect(user: string): Promise<string> {
    oauth.loginAs = user
    const run = cli(['oauth', 'connect', '--connector', 'crm', '--user', user, '--no-open', '--timeout', '30s'])
    const url = await run.stdout.waitFor(/http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+/, run.code)
    const page = await fetch(url)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /Connected/)
    assert.equal(await run.code, 0, run.stderr.text)
    // The CLI stamped the record with the real clock: keyvalet's must not be behind it, or a
    // test that moves it to just before the expiry lands short of it on a slow machine.
    kv.now = Math.max(kv.now, Date.now())
    return run.stdout.text
  }

  const lastAudit = async (): Promise<AuditRecord> => (await kv.audit()).at(-1) as AuditRecord
  const bearer = (i: number): string | undefined => /^Bearer (.+)$/.exec(String(api.received.at(i)?.headers.authorization))?.[1]
  const stored = (user: string) => readUserToken(kv.runtime.vault, 'crm', user)

  it('oauth connect stores the user token; a request carries it, masked for the sandbox, audited by label only', async () => {
    const before = oauth.counts.authorization_code
    const printed = await connect('alice')
    assert.equal(oauth.counts.authorization_code, before + 1, 'one code exchange')
    const [token] = oauth.issuedTo('alice')
    assert.ok(token !== undefined)
    assert.match(printed, /connected user "alice" to crm: scopes contacts\.read contacts\.write/)
    assert.ok(!printed.includes(token), 'the CLI never prints the token')
    assert.ok(!printed.includes((await stored('alice')).refresh_token ?? 'x'), 'nor the refresh token')
    assert.match(oauth.lastForm?.get('code_verifier') ?? '', /^[A-Za-z0-9_-]{43}$/, 'the exchange carried the PKCE verifier')

    const res = await send('alice', '/crm/contacts?limit=1')
    assert.equal(res.status, 200)
    assert.equal(api.received.at(-1)?.url, '/crm/contacts?limit=1')
    assert.equal(bearer(-1), token, 'the upstream received alice\'s own token')
    assert.equal((JSON.parse(res.text) as { subject: string }).subject, 'alice')
    assert.ok(!res.text.includes(token), 'the echoed token is masked for the sandbox')
    const record = await lastAudit()
    assert.equal(record.credential, 'oauth_user:crm:alice')
    assert.equal(record.user, 'alice')
    assert.ok(!JSON.stringify(await kv.audit()).includes(token), 'the audit log never holds the token')

    const status = cli(['oauth', 'status'])
    assert.equal(await status.code, 0)
    assert.match(status.stdout.text, /^crm\t"alice"\texpires \S+\trefresh token: yes\tscope: contacts\.read contacts\.write$/m)
    assert.ok(!status.stdout.text.includes(token))
  })

  it('two users get their own tokens; a disconnected user is refused from the next request', async () => {
    await connect('bob@example.com')
    const a = await send('alice', '/crm/me')
    const aliceSent = bearer(-1)
    const b = await send('bob@example.com', '/crm/me')
    const bobSent = bearer(-1)
    assert.equal(a.status, 200)
    assert.equal(b.status, 200)
    assert.equal(oauth.check(aliceSent ?? ''), 'alice')
    assert.equal(oauth.check(bobSent ?? ''), 'bob@example.com')
    assert.equal((await lastAudit()).credential, 'oauth_user:crm:bob@example.com')

    const off = cli(['oauth', 'disconnect', '--connector', 'crm', '--user', 'bob@example.com'])
    assert.equal(await off.code, 0)
    const seen = api.received.length
    const refused = await send('bob@example.com', '/crm/me')
    assert.equal(refused.status, 502)
    assert.equal(refused.headers['x-keyvalet-error'], 'credential_unavailable')
    assert.equal(api.received.length, seen)
  })

  it('a user who never connected gets credential_unavailable saying they must connect', async () => {
    const seen = api.received.length
    const res = await send('carol', '/crm/contacts')
    const body = JSON.parse(res.text) as { error: { code: string; message: string } }
    assert.equal(res.status, 502)
    assert.equal(body.error.code, 'credential_unavailable')
    assert.match(body.error.message, /has not connected their crm account.*keyvalet oauth connect/)
    assert.equal(api.received.length, seen, 'nothing went upstream, with or without a credential')
    const record = await lastAudit()
    assert.equal(record.error, 'credential_unavailable')
    assert.equal(record.detail?.why, 'not_connected')
    assert.equal(record.credential, null)
  })

  it('refreshes shortly before expiry, stores the rotated refresh token, never reuses the old one', async () => {
    await connect('dave')
    const first = await stored('dave')
    const refreshes = oauth.counts.refresh_token
    kv.now += 545_000 // 55 s before the 600 s token expires: inside refresh_before_s
    const res = await send('dave', '/crm/contacts')
    assert.equal(res.status, 200)
    assert.equal(oauth.counts.refresh_token, refreshes + 1)
    const second = await stored('dave')
    assert.notEqual(second.access_token, first.access_token)
    assert.notEqual(second.refresh_token, first.refresh_token, 'the rotated refresh token was stored')
    assert.equal(bearer(-1), second.access_token)
    assert.equal(oauth.refreshTokensPresented.at(-1), first.refresh_token)

    kv.now += 545_000
    assert.equal((await send('dave', '/crm/contacts')).status, 200)
    assert.equal(oauth.counts.refresh_token, refreshes + 2)
    assert.equal(oauth.refreshTokensPresented.at(-1), second.refresh_token, 'the second refresh used the rotated token')
    assert.equal(oauth.counts.refresh_reused, 0, 'no refresh token was ever presented twice')
    assert.equal((await lastAudit()).credential, 'oauth_user:crm:dave')
  })

  it('a 401 from the upstream (token revoked) brings one refresh and one retry; the sandbox sees 200', async () => {
    await connect('erin')
    assert.equal((await send('erin', '/crm/a')).status, 200)
    const revoked = bearer(-1) ?? ''
    oauth.revoke(revoked)
    const refreshes = oauth.counts.refresh_token
    const seen = api.received.length
    const res = await send('erin', '/crm/b')
    assert.equal(res.status, 200)
    assert.equal(oauth.counts.refresh_token, refreshes + 1)
    assert.equal(api.received.length, seen + 2, 'the refused request and its one retry')
    assert.equal(bearer(-2), revoked)
    assert.equal(oauth.check(bearer(-1) ?? ''), 'erin')
    const record = await lastAudit()
    assert.equal(record.status, 200)
    assert.equal(record.detail?.retried_after_401, true)
  })

  it('a streamed (non-replayable) body gets the 401 passed through; the next request carries the fresh token', async () => {
    assert.equal((await send('erin', '/crm/c')).status, 200)
    const revoked = bearer(-1) ?? ''
    oauth.revoke(revoked)
    const seen = api.received.length
    const refreshes = oauth.counts.refresh_token
    const res = await send('erin', '/crm/upload', { method: 'POST', body: Readable.from([Buffer.from('{"part":'), Buffer.from('1}')]) })
    assert.equal(res.status, 401, 'the upstream answer is passed through: the body cannot be sent twice')
    assert.equal(api.received.length, seen + 1)
    assert.equal(api.received.at(-1)?.body.toString(), '{"part":1}')
    assert.equal(oauth.counts.refresh_token, refreshes, 'no refresh while that request ran')
    assert.equal((await lastAudit()).upstream_status, 401)

    const next = await send('erin', '/crm/d')
    assert.equal(next.status, 200)
    assert.equal(api.received.length, seen + 2, 'the next request went out once, with a fresh token')
    assert.notEqual(bearer(-1), revoked)
    assert.equal(oauth.counts.refresh_token, refreshes + 1)
  })

  it('100 concurrent requests meeting an expired token cause exactly one refresh', async () => {
    await connect('frank')
    kv.now += 700_000
    const refreshes = oauth.counts.refresh_token
    const tokens = oauth.counts.token
    const seen = api.received.length
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => send('frank', `/crm/item/${i}`)))
    assert.ok(answers.every((a) => a.status === 200), answers.find((a) => a.status !== 200)?.text)
    assert.equal(oauth.counts.refresh_token, refreshes + 1)
    assert.equal(oauth.counts.token, tokens + 1)
    const sent = new Set(api.received.slice(seen).map((r) => r.headers.authorization))
    assert.equal(api.received.length, seen + 100)
    assert.deepEqual([...sent], [`Bearer ${(await stored('frank')).access_token}`])
  })

  it('a failing refresh answers credential_refresh_failed; neither the stale token nor an unauthenticated request goes out', async () => {
    await connect('gina')
    const staleRefresh = (await stored('gina')).refresh_token ?? ''
    kv.now += 700_000
    const seen = api.received.length
    try {
      oauth.failRefresh = 'server_error'
      const res = await send('gina', '/crm/contacts')
      const body = JSON.parse(res.text) as { error: { code: string } }
      assert.equal(res.status, 502)
      assert.match(String(res.headers['content-type']), /^application\/json/)
      assert.equal(body.error.code, 'credential_refresh_failed')
      let record = await lastAudit()
      assert.equal(record.error, 'credential_refresh_failed')
      assert.deepEqual(record.detail, { why: 'token_endpoint_rejected', status: 500, oauth_error: 'server_error' })

      oauth.failRefresh = 'invalid_grant'
      const dead = await send('gina', '/crm/contacts')
      assert.equal(dead.status, 502)
      assert.match(JSON.parse(dead.text).error.message, /must connect again/)
      record = await lastAudit()
      assert.equal(record.detail?.oauth_error, 'invalid_grant')
      // A dead refresh token is not presented again: the next request fails at once, the server is not asked.
      const asked = oauth.counts.refresh_token
      const again = await send('gina', '/crm/contacts')
      assert.equal(again.status, 502)
      assert.match(JSON.parse(again.text).error.message, /must connect again/)
      assert.equal(oauth.counts.refresh_token, asked, 'the token server was not asked again')
      assert.deepEqual((await lastAudit()).detail, { why: 'refresh_token_dead', oauth_error: 'invalid_grant' })
      assert.equal(api.received.length, seen, 'the upstream saw no request at all')
      assert.ok(!JSON.stringify(await kv.audit()).includes(staleRefresh), 'the token server\'s error text (which echoes the refresh token) is not recorded')
    } finally {
      oauth.failRefresh = false
    }
    await connect('gina')
    assert.equal((await send('gina', '/crm/contacts')).status, 200, 'connecting again stores a live refresh token, and requests work')
  })

  it('a transient refresh failure is retried by the next request', async () => {
    await connect('hugo')
    kv.now += 700_000
    try {
      oauth.failRefresh = 'server_error'
      assert.equal((await send('hugo', '/crm/contacts')).status, 502)
    } finally {
      oauth.failRefresh = false
    }
    assert.equal((await send('hugo', '/crm/contacts')).status, 200, 'the next request after the server recovers refreshes')
    assert.equal((await lastAudit()).decision, 'allow')
  })

  it('another process rotating the refresh token first: invalid_grant, then the record it stored is used', async () => {
    await connect('ivan')
    const mine = await stored('ivan')
    kv.now += 700_000
    oauth.beforeRefresh = async (presented) => {
      // The other keyvalet process: refreshes with the same refresh token and stores the result.
      const res = await fetch(oauth.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${oauth.clientId}:${oauth.clientSecret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: presented }),
      })
      const body = (await res.json()) as { access_token: string; refresh_token: string; expires_in: number }
      const theirs = recordFromGrant('ivan', { accessToken: body.access_token, refreshToken: body.refresh_token, expiresIn: body.expires_in, scope: undefined }, kv.now, mine)
      await writeUserToken(kv.runtime.vault, 'crm', theirs)
    }
    const reused = oauth.counts.refresh_reused
    const res = await send('ivan', '/crm/contacts')
    assert.equal(res.status, 200)
    assert.equal(oauth.counts.refresh_reused, reused + 1, 'keyvalet lost the race: its refresh token had been used')
    assert.equal(bearer(-1), (await stored('ivan')).access_token, 'and it sent the token the other process stored')
    assert.equal(oauth.check(bearer(-1) ?? ''), 'ivan')
  })

  it('a connect takes effect on the next request: a token refreshed before it is never sent again', async () => {
    // The CLI's connect stamps expiry by the wall clock; keyvalet's handler runs on the test clock.
    const connectNow = async (user: string, ttlS: number) => {
      await connect(user)
      const record = await stored(user)
      await writeUserToken(kv.runtime.vault, 'crm', { ...record, expires_at: kv.now + ttlS * 1000 })
      return record
    }
    await connectNow('judy', 600)
    const first = bearer(-1)
    assert.equal((await send('judy', '/crm/a')).status, 200)
    oauth.revoke(bearer(-1) ?? '')
    assert.equal((await send('judy', '/crm/b')).status, 200, 'a 401, a refresh and a retry: keyvalet holds a refreshed token')
    const refreshed = bearer(-1) ?? ''
    assert.notEqual(refreshed, first)
    assert.equal(refreshed, (await stored('judy')).access_token)

    // Connected again; the new token is refused at once (revoked), while the refreshed one still works.
    const reconnected = (await connectNow('judy', 600)).access_token
    assert.notEqual(reconnected, refreshed)
    oauth.revoke(reconnected)
    let seen = api.received.length
    assert.equal((await send('judy', '/crm/c')).status, 200)
    let sent = api.received.slice(seen).map((r) => /^Bearer (.+)$/.exec(String(r.headers.authorization))?.[1])
    assert.equal(sent[0], reconnected, 'the first attempt carries the token of the new connect')
    assert.ok(!sent.includes(refreshed), 'the token from before the connect is never sent again')
    assert.equal(sent.at(-1), (await stored('judy')).access_token, 'the retry carries the token refreshed from the new connect')

    // Connected again with a token near its expiry: refreshed from the new record, not from memory.
    const nearExpiry = await connectNow('judy', 30)
    const reused = oauth.counts.refresh_reused
    seen = api.received.length
    assert.equal((await send('judy', '/crm/d')).status, 200)
    assert.equal(oauth.refreshTokensPresented.at(-1), nearExpiry.refresh_token, 'the refresh used the new connect\'s refresh token')
    sent = api.received.slice(seen).map((r) => /^Bearer (.+)$/.exec(String(r.headers.authorization))?.[1])
    assert.deepEqual(sent, [(await stored('judy')).access_token])
    assert.equal(oauth.counts.refresh_reused, reused, 'no refresh token was presented twice')
  })

  it('client credentials: one token for many requests, fetched again when expired and after a 401', async () => {
    const fetched = oauth.counts.client_credentials
    for (let i = 0; i < 5; i++) assert.equal((await send('alice', `/svc/report/${i}`)).status, 200)
    assert.equal(oauth.counts.client_credentials, fetched + 1)
    assert.equal(oauth.lastForm?.get('scope'), 'reports')
    assert.equal(oauth.lastForm?.get('audience'), 'https://svc.example')
    assert.equal(oauth.lastForm?.get('client_secret'), oauth.clientSecret, 'client_auth: post')
    const token = bearer(-1) ?? ''
    assert.equal(oauth.check(token), `client:${oauth.clientId}`)
    assert.equal(new Set(api.received.slice(-5).map((r) => r.headers.authorization)).size, 1)
    assert.equal((await lastAudit()).credential, `oauth_client:svc:${oauth.clientId}`)
    assert.equal((await send('bob', '/svc/report')).status, 200, 'another user, the same client token')
    assert.equal(bearer(-1), token)

    kv.now += 700_000
    assert.equal((await send('alice', '/svc/report')).status, 200)
    assert.equal(oauth.counts.client_credentials, fetched + 2)
    const renewed = bearer(-1) ?? ''
    assert.notEqual(renewed, token)

    oauth.revoke(renewed)
    const res = await send('alice', '/svc/report')
    assert.equal(res.status, 200)
    assert.equal(oauth.counts.client_credentials, fetched + 3)
    assert.equal(bearer(-2), renewed)
    assert.equal((await lastAudit()).detail?.retried_after_401, true)
    assert.ok(!JSON.stringify(await kv.audit()).includes(renewed))
  })

  it('client credentials with a wrong client secret: a clear error, nothing sent upstream', async () => {
    const seen = api.received.length
    const res = await send('alice', '/svc-bad/report')
    assert.equal(res.status, 502)
    assert.equal(res.headers['x-keyvalet-error'], 'credential_refresh_failed')
    assert.ok(!res.text.includes('not-the-client-secret'))
    assert.equal(api.received.length, seen)
    const record = await lastAudit()
    assert.deepEqual(record.detail, { why: 'token_endpoint_rejected', status: 401, oauth_error: 'invalid_client' })
    assert.ok(!JSON.stringify(record).includes('not-the-client-secret'))
  })

  it('oauth connect refuses a redirect with a wrong state and fails cleanly when access is denied', async () => {
    const run = cli(['oauth', 'connect', '--connector', 'crm', '--user', 'henry', '--no-open', '--timeout', '30s'])
    const url = new URL(await run.stdout.waitFor(/http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+/, run.code))
    const callback = new URL(url.searchParams.get('redirect_uri') ?? '')
    const forged = await fetch(`${callback.href}?code=stolen&state=guess`)
    assert.equal(forged.status, 400)
    callback.searchParams.set('error', 'access_denied')
    callback.searchParams.set('state', url.searchParams.get('state') ?? '')
    assert.equal((await fetch(callback)).status, 400)
    assert.equal(await run.code, 1)
    assert.match(run.stderr.text, /did not grant access: access_denied/)
    assert.match(run.stderr.text, /wrong or missing state was ignored/)
    await assert.rejects(stored('henry'), /not connected|credential/)
  })
})
