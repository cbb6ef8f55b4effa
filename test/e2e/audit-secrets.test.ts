import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { recordFromGrant, writeUserToken } from '../../src/credentials/oauth/user-tokens.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startOAuthServer, type OAuthServer } from '../helpers/oauth-server.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** Longer than the 40 characters keyvalet keeps of an unknown content coding, mixed case. */
const STATIC_SECRET = 'sk-Live-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789'
const REFRESH_TOKEN = 'rt_Secret-Refresh-Token-0123456789abcdef'

/** Every spelling of `value` the audit log could hold: as it is, lower-cased, and in base64. */
function holds(records: readonly AuditRecord[], value: string): boolean {
  const text = JSON.stringify(records)
  return [value, value.slice(0, 12), Buffer.from(value).toString('base64').slice(0, 16)].some((v) => text.toLowerCase().includes(v.toLowerCase()))
}

describe('nothing the audit writes is a credential value', () => {
  let oauth: OAuthServer
  let api: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    oauth = await startOAuthServer({ clock: () => kv?.now ?? Date.now() })
    api = await startUpstream({
      handler: (req, res) => {
        // An upstream that echoes the credential it was sent into a header keyvalet records.
        const auth = req.headers.authorization ?? ''
        res.writeHead(200, { 'content-encoding': auth.slice('Bearer '.length) })
        res.end('????')
      },
    })
    const local = 'allow_insecure: true\n    allow_addresses: [127.0.0.1/32]'
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  echo:
    upstream: ${api.url}
    ${local}
    credential: { secret: echo-secret, inject: bearer }
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
  crm:
    upstream: ${api.url}
    ${local}
    credential:
      source: oauth_user
      inject: bearer
      oauth_user: { authorize_url: "${oauth.authorizeUrl}", token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: crm-client-secret }
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
`)
    await kv.setSecret('echo-secret', STATIC_SECRET)
    await kv.setSecret('crm-client-secret', oauth.clientSecret)
    key = (await kv.mintKey(['echo:read', 'crm:read'])).key
  })
  after(async () => {
    await kv.close()
    await api.close()
    await oauth.close()
  })

  const send = (path: string) => request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } })

  it('a token endpoint answering with the refresh token as its error code: recorded as "other", never the token', async () => {
    // alice's token has expired: the next request refreshes it, and the server answers with the refresh token as error code.
    const expired = recordFromGrant('alice', { accessToken: 'at_expired_000', refreshToken: REFRESH_TOKEN, expiresIn: 1, scope: undefined }, kv.now - 60_000)
    await writeUserToken(kv.runtime.vault, 'crm', expired)
    oauth.failRefresh = 'refresh_token_as_error'
    try {
      const seen = api.received.length
      const res = await send('/crm/contacts')
      const text = await res.body.text()
      assert.equal(res.statusCode, 502)
      assert.equal(res.headers['x-keyvalet-error'], 'credential_refresh_failed')
      assert.ok(!text.includes(REFRESH_TOKEN), 'the sandbox is not told the token either')
      assert.equal(oauth.refreshTokensPresented.at(-1), REFRESH_TOKEN, 'the server was asked with the refresh token')
      assert.equal(api.received.length, seen, 'nothing went upstream')
      const records = await kv.audit()
      assert.deepEqual(records.at(-1)?.detail, { why: 'token_endpoint_rejected', status: 400, oauth_error: 'other' })
      assert.ok(!holds(records, REFRESH_TOKEN), 'no record holds the refresh token')
      assert.ok(!holds(records, oauth.clientSecret), 'nor the client secret')
    } finally {
      oauth.failRefresh = false
    }
  })

  it('an upstream echoing the credential into a header keyvalet records: the record has it masked, even cut short', async () => {
    const res = await send('/echo/anything')
    await res.body.text()
    assert.equal(res.statusCode, 502)
    assert.equal(api.received.at(-1)?.headers.authorization, `Bearer ${STATIC_SECRET}`)
    const records = await kv.audit()
    const record = records.at(-1)
    assert.equal(record?.error, 'upstream_response_invalid')
    assert.match(String(record?.detail?.content_encoding), /^\*{40}$/)
    assert.ok(!holds(records, STATIC_SECRET))
  })
})
