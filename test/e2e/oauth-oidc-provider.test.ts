import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { readUserToken } from '../../src/credentials/oauth/user-tokens.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import { inProcessCli } from '../helpers/capture.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startRealAuthorizationServer, type RealAuthorizationServer } from '../helpers/oidc-provider.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/**
 * The OAuth sources against oidc-provider, a certified authorization server, instead of the
 * stand-in written for the other tests: whatever it refuses, keyvalet does wrong. The API checks
 * every bearer token with the provider itself.
 */
describe('OAuth against a real authorization server (oidc-provider)', () => {
  // Characters RFC 6749 §2.3.1 requires to be form-encoded inside HTTP Basic client authentication.
  const clientSecret = 'cs: +/=%&~"-secret'
  let as: RealAuthorizationServer
  let api: Upstream
  let kv: TestKeyvalet

  before(async () => {
    as = await startRealAuthorizationServer({ clientSecret })
    api = await startUpstream({
      handler: (req, res) => {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
        void as.check(token).then((subject) => {
          const body = JSON.stringify(subject === undefined ? { error: 'invalid_token' } : { subject, path: req.url })
          res.writeHead(subject === undefined ? 401 : 200, { 'content-type': 'application/json', ...(subject === undefined ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}) })
          res.end(body)
        })
      },
    })
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
        authorize_url: ${as.authorizeUrl}
        token_url: ${as.tokenUrl}
        client_id: ${as.clientId}
        client_secret: crm-client-secret
        scopes: [contacts.read, contacts.write]
        refresh_before_s: 60
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
  reports:
    upstream: ${api.url}/reports
    ${local}
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${as.tokenUrl}", client_id: ${as.clientId}, client_secret: crm-client-secret, scopes: [reports] }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
  reports-post:
    upstream: ${api.url}/reports
    ${local}
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${as.tokenUrl}", client_id: ${as.clientId}, client_secret: crm-client-secret, scopes: [reports], client_auth: post }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`)
    await kv.setSecret('crm-client-secret', clientSecret)
  })
  after(async () => {
    await kv.close()
    await api.close()
    await as.close()
  })

  const keys = new Map<string, string>()
  async function send(user: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
    let key = keys.get(user)
    if (key === undefined) {
      const grants = ['crm:read', 'reports:read', 'reports-post:read'].map(parseGrant)
      key = (await kv.runtime.sessions.create({ agent: 'agent-1', user, workspace: 'acme', task: 'task-1', grants, ttlMs: 30 * 86_400_000 })).key
      keys.set(user, key)
    }
    const res = await request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
  }

  /** `keyvalet oauth connect`, the browser played by a cookie-keeping fetch through login and consent. */
  async function connect(user: string): Promise<void> {
    as.loginAs = user
    const run = inProcessCli(kv, ['oauth', 'connect', '--connector', 'crm', '--user', user, '--no-open', '--timeout', '30s'])
    const url = await run.stdout.waitFor(/http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/, run.code)
    const landed = await as.signIn(url)
    assert.equal(landed.status, 200, await landed.text())
    assert.equal(await run.code, 0, run.stderr.text)
    assert.match(run.stdout.text, /refresh token stored/)
  }

  const stored = (user: string) => readUserToken(kv.runtime.vault, 'crm', user)
  const bearer = (i: number): string => /^Bearer (.+)$/.exec(String(api.received.at(i)?.headers.authorization))?.[1] ?? ''
  const lastAudit = async (): Promise<AuditRecord> => (await kv.audit()).at(-1) as AuditRecord

  it('connect: authorization code with PKCE and form-encoded client authentication; the token works at the API', async () => {
    await connect('alice')
    const record = await stored('alice')
    assert.equal(as.counts.authorization_code, 1)
    assert.ok(record.refresh_token !== undefined && record.expires_at !== undefined)
    const res = await send('alice', '/crm/contacts')
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.equal(res.body.subject, 'alice', 'the provider knows the token keyvalet attached as alice\'s')
    assert.equal(bearer(-1), record.access_token)
    const audit = await lastAudit()
    assert.equal(audit.credential, 'oauth_user:crm:alice')
    assert.equal(audit.upstream_status, 200)
    assert.ok(!JSON.stringify(await kv.audit()).includes(record.access_token))
  })

  it('refresh with rotation: each refresh presents the latest refresh token, once; 50 concurrent requests refresh once', async () => {
    const first = await stored('alice')
    kv.now += 560_000 // inside refresh_before_s of the 600 s token, by keyvalet's clock
    const refreshes = as.counts.refresh_token
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => send('alice', `/crm/item/${i}`)))
    assert.ok(answers.every((a) => a.status === 200 && a.body.subject === 'alice'), JSON.stringify(answers.find((a) => a.status !== 200)))
    assert.equal(as.counts.refresh_token, refreshes + 1)
    const second = await stored('alice')
    assert.notEqual(second.refresh_token, first.refresh_token, 'the provider rotated the refresh token and keyvalet stored it')
    assert.equal(as.refreshTokensPresented.at(-1), first.refresh_token)

    kv.now += 560_000
    assert.equal((await send('alice', '/crm/again')).status, 200)
    assert.equal(as.counts.refresh_token, refreshes + 2)
    assert.equal(as.refreshTokensPresented.at(-1), second.refresh_token)
    assert.equal(new Set(as.refreshTokensPresented).size, as.refreshTokensPresented.length, 'no refresh token was ever presented twice')
    assert.equal(as.counts.failed, 0)
  })

  it('a revoked access token: the API answers 401; the provider revoked the whole grant with it, so the one refresh fails with "connect again"', async () => {
    // oidc-provider revokes every token of the grant when one access token is revoked (RFC 7009 §2.1 allows it).
    const record = await stored('alice')
    await as.revoke(record.access_token, 'access_token')
    assert.equal(await as.check(record.access_token), undefined)
    const seen = api.received.length
    const refreshes = as.refreshTokensPresented.length
    const res = await send('alice', '/crm/after-revoke')
    assert.equal(res.status, 502)
    const error = res.body.error as { code: string; message: string }
    assert.equal(error.code, 'credential_refresh_failed')
    assert.match(error.message, /must connect again/)
    assert.equal(api.received.length, seen + 1, 'the refused attempt only: no retry without a fresh token')
    assert.equal(bearer(-1), record.access_token)
    assert.deepEqual(as.refreshTokensPresented.slice(refreshes), [record.refresh_token], 'one refresh, with the stored refresh token')
    const audit = await lastAudit()
    assert.equal(audit.detail?.retried_after_401, true)
    assert.equal(audit.detail?.oauth_error, 'invalid_grant')

    assert.equal((await send('alice', '/crm/again')).status, 502, 'the dead refresh token is not presented again')
    assert.equal(as.refreshTokensPresented.length, refreshes + 1)
    await connect('alice')
    assert.equal((await send('alice', '/crm/again')).status, 200, 'connecting again works at once')
  })

  it('a revoked refresh token (the grant is gone): refused with "connect again", nothing reaches the API', async () => {
    await connect('bob')
    const record = await stored('bob')
    await as.revoke(record.refresh_token ?? '', 'refresh_token')
    kv.now += 700_000
    const seen = api.received.length
    const res = await send('bob', '/crm/contacts')
    assert.equal(res.status, 502)
    const error = res.body.error as { code: string; message: string }
    assert.equal(error.code, 'credential_refresh_failed')
    assert.match(error.message, /must connect again/)
    assert.equal(api.received.length, seen)
    const audit = await lastAudit()
    assert.equal(audit.detail?.oauth_error, 'invalid_grant')
    assert.ok(!JSON.stringify(await kv.audit()).includes(record.refresh_token ?? '-'))

    await connect('bob')
    assert.equal((await send('bob', '/crm/contacts')).status, 200, 'connecting again works at once')
  })

  it('client credentials, with client_secret_basic and client_secret_post: one token for many requests', async () => {
    for (const connector of ['reports', 'reports-post']) {
      const before = as.counts.client_credentials
      for (let i = 0; i < 3; i++) {
        const res = await send('carol', `/${connector}/r${i}`)
        assert.equal(res.status, 200, JSON.stringify(res.body))
        assert.equal(res.body.subject, `client:${as.clientId}`)
      }
      assert.equal(as.counts.client_credentials, before + 1, `${connector}: one token fetched`)
      assert.equal((await lastAudit()).credential, `oauth_client:${connector}:${as.clientId}`)
    }
  })

  it('a revoked client-credentials token is fetched again after the 401', async () => {
    const token = bearer(-1)
    await as.revoke(token, 'access_token')
    const before = as.counts.client_credentials
    const res = await send('carol', '/reports-post/after-revoke')
    assert.equal(res.status, 200)
    assert.equal(as.counts.client_credentials, before + 1)
    assert.notEqual(bearer(-1), token)
  })
})
