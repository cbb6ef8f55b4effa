import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startGitHubServer, type GitHubServer } from '../helpers/github-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const APP_ID = 4242
const INSTALLATION = 77
const READ_LABEL = `github_app:${APP_ID}:${INSTALLATION} repositories=app permissions=contents:read,issues:read,metadata:read`
const WRITE_LABEL = `github_app:${APP_ID}:${INSTALLATION} repositories=app permissions=contents:write,issues:write,metadata:read`

/** A connector on the GitHub stand-in with the github_app source; `app` overrides parts of its block. */
function connector(name: string, url: string, rules: string, app: { secret?: string; installation?: number; repositories?: string } = {}): string {
  return `  ${name}:
    upstream: ${url}
    ca_file: github-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential:
      source: github_app
      secret: ${app.secret ?? 'github-app-key'}
      inject: bearer
      github_app:
        app_id: ${APP_ID}
        installation_id: ${app.installation ?? INSTALLATION}
        api_url: ${url}
        repositories: [${app.repositories ?? 'acme/app'}]
        permissions:
          read: { metadata: read, contents: read, issues: read }
          write: { contents: write, issues: write }
    rules:
${rules}
`
}

describe('github_app: installation tokens scoped to the task, against a GitHub stand-in', () => {
  const app = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pki = upstreamCertificate('127.0.0.1')
  let gh: GitHubServer
  let kv: TestKeyvalet
  let readKey: string
  let writeKey: string

  before(async () => {
    const clock = { now: (): number => kv?.now ?? Date.now() }
    gh = await startGitHubServer({
      tls: pki.tls,
      app: { id: APP_ID, publicKey: app.publicKey, permissions: { metadata: 'read', contents: 'write', issues: 'write', pull_requests: 'write' } },
      installations: [{ id: INSTALLATION, account: 'acme', repositories: ['app', 'other'] }],
      clock: () => clock.now(),
    })
    const repoRules = `      - { id: repo, methods: [GET], path: /repos/acme/app, severity: read }
      - { id: issue, methods: [POST], path: /repos/acme/app/issues, severity: write }`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
${connector('github', gh.url, repoRules)}
${connector('github-lax', gh.url, '      - { id: issue, methods: [POST], path: /repos/acme/app/issues, severity: read }  # misconfigured on purpose')}
${connector('github-nowhere', gh.url, repoRules, { installation: 99 })}
${connector('github-stranger', gh.url, repoRules, { repositories: 'secret-repo' })}
${connector('github-wrong-key', gh.url, repoRules, { secret: 'stranger-key' })}
${connector('github-not-a-key', gh.url, repoRules, { secret: 'not-a-key' })}`, { files: { 'github-ca.pem': pki.caPem } })
    await kv.setSecret('github-app-key', app.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString())
    await kv.setSecret('stranger-key', stranger.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())
    await kv.setSecret('not-a-key', 'ghp_this_is_a_personal_token_not_a_pem')
    const connectors = ['github', 'github-lax', 'github-nowhere', 'github-stranger', 'github-wrong-key', 'github-not-a-key']
    readKey = (await kv.mintKey(connectors.map((c) => `${c}:read`), { ttlMs: 86_400_000 })).key
    writeKey = (await kv.mintKey(['github:write'], { agent: 'writer', ttlMs: 86_400_000 })).key
  })
  after(async () => {
    await kv?.close()
    await gh?.close()
  })

  const get = async (path: string, key: string) => {
    const res = await request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
  }
  const post = async (path: string, key: string, body: unknown) => {
    const res = await request(`${kv.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
  }
  const noSecretsIn = async (...values: string[]) => {
    const log = JSON.stringify(await kv.audit())
    for (const v of values) assert.ok(!log.includes(v), 'no token, JWT or task key in the audit log')
  }

  it('a read grant: the API gets a freshly minted token for exactly the repository with read permissions; the answer masks it; the audit names the label', async () => {
    const res = await get('/github/repos/acme/app', readKey)
    assert.equal(res.status, 200)
    assert.equal(gh.mints.length, 1)
    const mint = gh.mints[0]
    assert.equal(mint?.status, 201)
    assert.deepEqual(mint?.body, { repositories: ['app'], permissions: { contents: 'read', issues: 'read', metadata: 'read' } })
    const claims = mint?.claims ?? {}
    assert.equal(claims.iss, String(APP_ID))
    assert.ok(Number(claims.exp) - Number(claims.iat) <= 660 && Number(claims.iat) <= kv.now / 1000 - 59, 'iat back-dated for skew, exp within ten minutes')
    const token = mint?.token
    assert.ok(token !== undefined)
    assert.deepEqual(token.repositories, ['acme/app'])
    assert.deepEqual(token.permissions, { contents: 'read', issues: 'read', metadata: 'read' })

    // Upstream received the installation token, not the task key.
    assert.equal(gh.received.at(-1)?.authorization, `Bearer ${token.token}`)
    assert.equal(gh.received.at(-1)?.status, 200)
    // The sandbox got the answer with the echoed token masked.
    const body = JSON.parse(res.text) as { full_name: string; echoed_authorization: string }
    assert.equal(body.full_name, 'acme/app')
    assert.equal(body.echoed_authorization, `Bearer ${'*'.repeat(token.token.length)}`)
    assert.ok(!res.text.includes(token.token))
    // The audit names the App, installation, repositories and permissions.
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.rule, record?.credential, record?.upstream_status], ['allow', 'repo', READ_LABEL, 200])
    await noSecretsIn(token.token, readKey)
  })

  it('many requests, concurrent and one after another, share one cached token: no new mint', async () => {
    const before = gh.mints.length
    const token = gh.mints.at(-1)?.token?.token
    const results = await Promise.all(Array.from({ length: 10 }, () => get('/github/repos/acme/app', readKey)))
    for (let i = 0; i < 3; i++) results.push(await get('/github/repos/acme/app', readKey))
    assert.ok(results.every((r) => r.status === 200))
    assert.equal(gh.mints.length, before)
    assert.ok(gh.received.slice(-13).every((r) => r.authorization === `Bearer ${token}` && r.status === 200))
    assert.ok((await kv.audit()).slice(-13).every((r) => r.credential === READ_LABEL && r.decision === 'allow'))
  })

  it('a token about to expire is replaced before it is sent: the API never sees an expired one', async () => {
    const old = gh.mints.at(-1)?.token
    assert.ok(old !== undefined)
    kv.now = old.expiresAt + 1_000 // the old token is now expired at GitHub too
    assert.equal(gh.check(old.token, 'acme/app', 'metadata', 'read'), 401)
    const before = gh.mints.length
    const res = await get('/github/repos/acme/app', readKey)
    assert.equal(res.status, 200)
    assert.equal(gh.mints.length, before + 1)
    const fresh = gh.mints.at(-1)?.token
    assert.ok(fresh !== undefined && fresh.token !== old.token)
    assert.equal(gh.received.at(-1)?.authorization, `Bearer ${fresh.token}`)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.credential, record?.upstream_status, record?.detail], [READ_LABEL, 200, undefined])
  })

  it('a write grant gets the write permissions, and can create an issue', async () => {
    const before = gh.mints.length
    const res = await post('/github/repos/acme/app/issues', writeKey, { title: 'from the agent' })
    assert.equal(res.status, 201)
    assert.equal(JSON.parse(res.text).title, 'from the agent')
    assert.equal(gh.mints.length, before + 1, 'a token of another scope is minted separately')
    const token = gh.mints.at(-1)?.token
    assert.deepEqual(gh.mints.at(-1)?.body, { repositories: ['app'], permissions: { contents: 'write', issues: 'write', metadata: 'read' } })
    assert.deepEqual(token?.permissions, { contents: 'write', issues: 'write', metadata: 'read' })
    assert.equal(gh.received.at(-1)?.authorization, `Bearer ${token?.token}`)
    assert.equal(gh.received.at(-1)?.body, '{"title":"from the agent"}')
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.agent, record?.rule, record?.credential, record?.status], ['writer', 'issue', WRITE_LABEL, 201])
  })

  it('a read grant gets a read-only token even where a rule is misconfigured: GitHub refuses the write', async () => {
    const res = await post('/github-lax/repos/acme/app/issues', readKey, { title: 'should not exist' })
    assert.equal(res.status, 403)
    assert.match(res.text, /Resource not accessible by integration/)
    const token = gh.mints.at(-1)?.token
    assert.deepEqual(token?.permissions, { contents: 'read', issues: 'read', metadata: 'read' })
    assert.deepEqual([gh.received.at(-1)?.authorization, gh.received.at(-1)?.status], [`Bearer ${token?.token}`, 403])
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.connector, record?.credential, record?.upstream_status], ['allow', 'github-lax', READ_LABEL, 403])
  })

  it('GitHub refusing the mint (unknown installation, repository outside it, wrong App key) is a clear error; nothing is sent', async () => {
    const cases = [
      ['github-nowhere', 404, 'Not Found'],
      ['github-stranger', 422, 'There is at least one repository that does not exist or is not accessible to the parent installation.'],
      ['github-wrong-key', 401, 'A JSON web token could not be decoded'],
    ] as const
    for (const [name, status, message] of cases) {
      const sent = gh.received.length
      const minted = gh.mints.length
      const res = await get(`/${name}/repos/acme/app`, readKey)
      assert.equal(res.status, 502, name)
      assert.equal(res.headers['x-keyvalet-error'], 'credential_unavailable')
      assert.equal(JSON.parse(res.text).error.message, 'The credential for this connector is not available.')
      assert.equal(gh.mints.length, minted + 1)
      assert.equal(gh.mints.at(-1)?.status, status)
      assert.equal(gh.received.length, sent, `${name}: no request went to the API without its token`)
      const record = (await kv.audit()).at(-1)
      assert.deepEqual([record?.connector, record?.decision, record?.error, record?.credential], [name, 'error', 'credential_unavailable', null])
      assert.deepEqual(record?.detail, {
        source: 'github_app', app_id: String(APP_ID), installation_id: name === 'github-nowhere' ? 99 : INSTALLATION,
        repositories: [name === 'github-stranger' ? 'secret-repo' : 'app'], permissions: { contents: 'read', issues: 'read', metadata: 'read' },
        why: 'mint_refused', status, github_message: message,
      })
    }
    // A refusal is answered from memory for 30 s (the App's rate limit is not spent on retries), then asked again.
    const minted = gh.mints.length
    const again = await get('/github-nowhere/repos/acme/app', readKey)
    assert.equal(again.status, 502)
    assert.equal(again.headers['x-keyvalet-error'], 'credential_unavailable')
    assert.equal(gh.mints.length, minted, 'GitHub was not asked again')
    assert.equal((await kv.audit()).at(-1)?.error, 'credential_unavailable')
    kv.now += 31_000
    assert.equal((await get('/github-nowhere/repos/acme/app', readKey)).status, 502)
    assert.equal(gh.mints.length, minted + 1, 'asked again once the hold is over')
    await noSecretsIn(readKey, 'eyJ')
  })

  it('GitHub failing (5xx) is credential_refresh_failed; nothing is cached, the next request mints again', async () => {
    kv.now += 3_600_000 // the cached read token has expired
    gh.failNextMint = 503
    const minted = gh.mints.length
    const sent = gh.received.length
    const res = await get('/github/repos/acme/app', readKey)
    assert.equal(res.status, 502)
    assert.equal(res.headers['x-keyvalet-error'], 'credential_refresh_failed')
    assert.equal(gh.received.length, sent, 'nothing went to the API')
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.error, record?.credential], ['credential_refresh_failed', null])
    assert.deepEqual([(record?.detail as { why?: string })?.why, (record?.detail as { status?: number })?.status], ['mint_refused', 503])
    const again = await get('/github/repos/acme/app', readKey)
    assert.equal(again.status, 200)
    assert.equal(gh.mints.length, minted + 2)
    assert.deepEqual(gh.mints.slice(-2).map((m) => m.status), [503, 201])
  })

  it('a vault secret that is not an RSA private key: credential_unavailable before anything is sent', async () => {
    const minted = gh.mints.length
    const res = await get('/github-not-a-key/repos/acme/app', readKey)
    assert.equal(res.status, 502)
    assert.equal(res.headers['x-keyvalet-error'], 'credential_unavailable')
    assert.ok(!res.text.includes('ghp_'))
    assert.equal(gh.mints.length, minted)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.error, (record?.detail as { why?: string })?.why], ['credential_unavailable', 'private_key_invalid'])
  })

  it('a 401 from the API (token revoked) drops the cached token: one new mint and one retry', async () => {
    gh.revokeAll()
    const minted = gh.mints.length
    const sent = gh.received.length
    const res = await get('/github/repos/acme/app', readKey)
    assert.equal(res.status, 200)
    assert.equal(gh.mints.length, minted + 1)
    const tries = gh.received.slice(sent)
    const fresh = gh.mints.at(-1)?.token?.token
    assert.equal(tries.length, 2)
    assert.equal(tries[0]?.status, 401)
    assert.notEqual(tries[0]?.authorization, `Bearer ${fresh}`)
    assert.deepEqual([tries[1]?.authorization, tries[1]?.status], [`Bearer ${fresh}`, 200])
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.status, record?.upstream_status, record?.credential, record?.detail], [200, 200, READ_LABEL, { retried_after_401: true }])
  })
})
