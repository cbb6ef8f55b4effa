import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWTPayload } from 'jose'
import { request } from 'undici'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HEADER = 'x-keyvalet-assertion'
const API_KEY = 'crm-static-key-0123456789'

/** What the internal API stand-in concluded about each request it received. */
interface Verdict {
  readonly ok: boolean
  readonly token: string | undefined
  readonly payload?: JWTPayload
  readonly kid?: string
  readonly error?: string
}

describe('signed user assertions for an internal API', () => {
  let api: Upstream
  let kv: TestKeyvalet
  let key: string
  let session: string
  const verdicts: Verdict[] = []
  const jwksUrl = (): URL => new URL(`${kv.url}/.well-known/jwks.json`)

  before(async () => {
    // The internal API: fetches keyvalet's JWKS over HTTP and verifies every request's assertion,
    // as a real service would (jose, EdDSA only, its own issuer and audience). No cooldown between
    // JWKS refetches, so a new kid is looked up at once (jose's default waits 30 s).
    let remote: ReturnType<typeof createRemoteJWKSet> | undefined
    api = await startUpstream({
      handler: (req, res, received) => {
        remote ??= createRemoteJWKSet(jwksUrl(), { cooldownDuration: 0 })
        const token = received.headers[HEADER] as string | undefined
        void jwtVerify(token ?? '', remote, { algorithms: ['EdDSA'], issuer: 'keyvalet', audience: 'crm', currentDate: new Date(kv.now) }).then(
          ({ payload, protectedHeader }) => ({ ok: true, token, payload, kid: protectedHeader.kid }),
          (err: Error & { code?: string }) => ({ ok: false, token, error: err.code ?? err.message }),
        ).then((verdict: Verdict) => {
          verdicts.push(verdict)
          const body = JSON.stringify({ ...verdict, path: req.url })
          res.writeHead(verdict.ok ? 200 : 401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
          res.end(body)
        })
      },
    })
    const connector = (name: string, assertion: string) => `  ${name}:
    upstream: ${api.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: crm-key, inject: bearer }
    assertion: ${assertion}
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
${connector('crm', `{ header: ${HEADER}, ttl_s: 60 }`)}${connector('billing', `{ header: ${HEADER}, ttl_s: 60, audience: billing }`)}`)
    await kv.setSecret('crm-key', API_KEY)
    ;({ key, session } = await kv.mintKey(['crm:read', 'billing:read'], { agent: 'triage-bot' }))
  })
  after(async () => {
    await kv?.close()
    await api?.close()
  })

  async function get(path: string, headers: Record<string, string> = {}) {
    const seenFrom = api.received.length
    const auditFrom = (await kv.audit()).length
    const res = await request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}`, ...headers } })
    const text = await res.body.text()
    return { status: res.statusCode, text, seen: api.received.slice(seenFrom), verdicts: verdicts.slice(seenFrom), records: (await kv.audit()).slice(auditFrom) }
  }

  it('adds a verifiable assertion naming the user, agent, workspace, task and session, with a fresh jti each time', async () => {
    const first = await get('/crm/accounts/42')
    const second = await get('/crm/accounts/43')
    for (const r of [first, second]) {
      assert.equal(r.status, 200, r.text)
      assert.equal(r.seen.length, 1)
      assert.equal(r.seen[0]?.headers.authorization, `Bearer ${API_KEY}`, 'the credential is still attached')
      assert.equal(r.verdicts[0]?.ok, true, r.verdicts[0]?.error)
    }
    const payload = first.verdicts[0]?.payload
    assert.ok(payload !== undefined)
    assert.deepEqual({ ...payload, iat: 0, nbf: 0, exp: 0, jti: '' }, {
      iss: 'keyvalet', sub: 'alice', aud: 'crm', iat: 0, nbf: 0, exp: 0, jti: '',
      act: { sub: 'triage-bot' }, workspace: 'acme', task: 'task-1', sid: session,
    })
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 60)
    assert.equal(payload.nbf, payload.iat)
    assert.ok(Math.abs((payload.iat ?? 0) - Date.now() / 1000) < 120, 'issued now')
    assert.match(payload.jti ?? '', /^[0-9a-f-]{36}$/)
    assert.notEqual(payload.jti, second.verdicts[0]?.payload?.jti, 'a new jti per request')

    // The sandbox: the API's answer, with the assertion masked like a credential.
    const token = first.verdicts[0]?.token ?? ''
    assert.ok(!first.text.includes(token) && first.text.includes('*'.repeat(token.length)))
    assert.equal(JSON.parse(first.text).payload.sub, 'alice')

    // The audit: the key and token id, never the token.
    assert.deepEqual(first.records.map((r) => [r.decision, r.connector, r.user, r.upstream_status, r.credential, r.redactions]), [['allow', 'crm', 'alice', 200, 'crm-key', 1]])
    assert.deepEqual(first.records[0]?.detail, { assertion: { kid: first.verdicts[0]?.kid, jti: payload.jti } })
    assert.ok(!JSON.stringify(await kv.audit()).includes(token))
  })

  it("replaces the sandbox's own assertion header, which never reaches the API", async () => {
    const forged = await new SignJWT({ act: { sub: 'triage-bot' } }).setProtectedHeader({ alg: 'EdDSA', kid: 'forged' }).setSubject('root').setIssuer('keyvalet').setAudience('crm').setExpirationTime('1h')
      .sign((await generateKeyPair('EdDSA', { crv: 'Ed25519' })).privateKey)
    const r = await get('/crm/me', { [HEADER]: forged })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.verdicts[0]?.ok, true)
    assert.equal(r.verdicts[0]?.payload?.sub, 'alice')
    const sent = r.seen[0]?.rawHeaders.filter((_v, i, all) => i % 2 === 0 && all[i]?.toLowerCase() === HEADER) ?? []
    assert.equal(sent.length, 1, 'exactly one assertion header upstream')
    assert.ok(!JSON.stringify(r.seen[0]?.rawHeaders).includes(forged))
    assert.deepEqual(r.records.map((x) => [x.decision, x.status]), [['allow', 200]])
  })

  it('an assertion for another audience fails verification at the API', async () => {
    const r = await get('/billing/invoices')
    assert.equal(r.status, 401)
    assert.equal(r.verdicts[0]?.ok, false)
    assert.equal(r.verdicts[0]?.error, 'ERR_JWT_CLAIM_VALIDATION_FAILED')
    const token = r.verdicts[0]?.token ?? ''
    assert.ok(token.length > 0)
    const { payload } = await jwtVerify(token, createRemoteJWKSet(jwksUrl()), { audience: 'billing' })
    assert.equal(payload.aud, 'billing', 'the token was made for billing')
    assert.deepEqual(r.records.map((x) => [x.decision, x.connector, x.status, x.upstream_status, x.error]), [['allow', 'billing', 401, 401, null]])
  })

  it('publishes the JWKS without a task key: public members only, cacheable, not audited', async () => {
    const auditFrom = (await kv.audit()).length
    const res = await request(jwksUrl())
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['cache-control'], 'public, max-age=300')
    assert.match(String(res.headers['content-type']), /^application\/json/)
    const jwks = (await res.body.json()) as { keys: Record<string, unknown>[] }
    assert.ok(jwks.keys.length >= 1)
    for (const k of jwks.keys) {
      assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
      assert.deepEqual([k.kty, k.crv, k.alg, k.use], ['OKP', 'Ed25519', 'EdDSA', 'sig'])
      assert.equal('d' in k, false)
    }
    const head = await request(jwksUrl(), { method: 'HEAD' })
    assert.equal(head.statusCode, 200)
    await head.body.dump()
    const post = await request(jwksUrl(), { method: 'POST', body: '{}' })
    assert.equal(post.statusCode, 401, 'anything but GET and HEAD is an ordinary (unauthenticated) request')
    await post.body.dump()
    assert.deepEqual((await kv.audit()).slice(auditFrom).map((r) => [r.method, r.error]), [['POST', 'task_key_missing']], 'only the refused POST is audited')
  })

  it('after `keyvalet assertion rotate`, publishes the new key first, then signs with it while the old one stays published and its tokens verify', async () => {
    const before = await get('/crm/before')
    const oldKid = before.verdicts[0]?.kid
    const oldToken = before.verdicts[0]?.token ?? ''
    assert.ok(oldKid !== undefined)

    const env = { KEYVALET_MASTER_KEY: kv.masterKey }
    const rotate = await cli(['assertion', 'rotate', '--overlap', '1h', '--publish-ahead', '5m', '--config', kv.configFile], { env })
    assert.equal(rotate.code, 0, rotate.stderr)
    const newKid = /^new signing key (\S+), published now, signing from \S+$/m.exec(rotate.stdout)?.[1]
    assert.ok(newKid !== undefined && newKid !== oldKid, rotate.stdout)
    assert.match(rotate.stdout, new RegExp(`still published until \\S+: ${oldKid}`))

    // Published ahead: an API that fetches the JWKS now knows the new key, while the old one still signs.
    const ahead = (await (await request(jwksUrl())).body.json()) as { keys: { kid: string }[] }
    assert.deepEqual(ahead.keys.map((k) => k.kid).sort(), [oldKid, newKid].sort())
    const during = await get('/crm/during')
    assert.equal(during.verdicts[0]?.ok, true, during.verdicts[0]?.error)
    assert.equal(decodeProtectedHeader(during.verdicts[0]?.token ?? '').kid, oldKid, 'the old key signs until the new one is due')

    kv.now = Date.now() + 5 * 60_000 + 1_000
    const afterwards = await get('/crm/after')
    assert.equal(afterwards.status, 200, afterwards.text)
    assert.equal(afterwards.verdicts[0]?.ok, true, afterwards.verdicts[0]?.error)
    assert.equal(decodeProtectedHeader(afterwards.verdicts[0]?.token ?? '').kid, newKid, 'the running keyvalet signs with the new key, no restart')
    assert.deepEqual(afterwards.records[0]?.detail, { assertion: { kid: newKid, jti: afterwards.verdicts[0]?.payload?.jti } })

    const fresh = createRemoteJWKSet(jwksUrl())
    const published = (await (await request(jwksUrl())).body.json()) as { keys: { kid: string }[] }
    assert.deepEqual(published.keys.map((k) => k.kid).sort(), [oldKid, newKid].sort(), 'both keys during the overlap')
    const old = await jwtVerify(oldToken, fresh, { algorithms: ['EdDSA'], issuer: 'keyvalet', audience: 'crm' })
    assert.equal(old.protectedHeader.kid, oldKid, "the old key's token still verifies")

    const printed = await cli(['assertion', 'jwks', '--config', kv.configFile], { env })
    assert.equal(printed.code, 0, printed.stderr)
    assert.deepEqual(JSON.parse(printed.stdout), published)
    assert.ok(!printed.stdout.includes('"d"'))
  })

  it('fails closed when the signing keys cannot be read: nothing is sent', async () => {
    await kv.setSecret('keyvalet.assertion-keys', 'not a key list')
    const r = await get('/crm/accounts/1')
    assert.equal(r.status, 502)
    assert.equal(JSON.parse(r.text).error.code, 'credential_unavailable')
    assert.equal(r.seen.length, 0)
    assert.deepEqual(r.records.map((x) => [x.decision, x.error, x.detail?.why]), [['error', 'credential_unavailable', 'record is not JSON']])
    const jwks = await request(jwksUrl())
    assert.equal(jwks.statusCode, 502)
    await jwks.body.dump()
  })
})
