import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { readUserToken } from '../../src/credentials/oauth/user-tokens.ts'
import { inProcessCli } from '../helpers/capture.ts'
import { startGitHubServer, type GitHubServer } from '../helpers/github-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startOAuthServer, type OAuthServer } from '../helpers/oauth-server.ts'
import { startTestPostgres, type TestPostgres, storeBlock } from '../helpers/postgres.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let server: TestPostgres
let oauth: OAuthServer
let api: Upstream
let gh: GitHubServer
const githubApp = generateKeyPairSync('rsa', { modulusLength: 2048 })
const githubPki = upstreamCertificate('127.0.0.1')
/** Three keyvalet instances on one PostgreSQL database; their clocks move together. */
let fleet: TestKeyvalet[] = []

before(async () => {
  server = await startTestPostgres()
  oauth = await startOAuthServer({ clock: () => fleet[0]?.now ?? Date.now(), accessTtlS: 600 })
  api = await startUpstream({ handler: oauth.api })
  gh = await startGitHubServer({
    tls: githubPki.tls,
    app: { id: 4242, publicKey: githubApp.publicKey, permissions: { metadata: 'read', contents: 'read' } },
    installations: [{ id: 77, account: 'acme', repositories: ['app'] }],
    clock: () => fleet[0]?.now ?? Date.now(),
  })
  const db = await server.database()
  const store = storeBlock(server, db)
  const local = `allow_insecure: true
    allow_addresses: [127.0.0.1/32]`
  const config = `version: 1
listen: { gateway: "127.0.0.1:0" }
${store.yaml}connectors:
  crm:
    upstream: ${api.url}/crm
    ${local}
    credential:
      source: oauth_user
      inject: bearer
      oauth_user: { authorize_url: "${oauth.authorizeUrl}", token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: client-secret, refresh_before_s: 60 }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
  svc:
    upstream: ${api.url}/svc
    ${local}
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: client-secret }
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
  github:
    upstream: ${gh.url}
    ca_file: github-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential:
      source: github_app
      secret: github-app-key
      inject: bearer
      github_app: { app_id: 4242, installation_id: 77, api_url: "${gh.url}", repositories: [acme/app], permissions: { read: { metadata: read, contents: read } } }
    rules: [{ id: repo, methods: [GET], path: /repos/acme/app, severity: read }]
`
  const files = { 'github-ca.pem': githubPki.caPem, ...store.files }
  const masterKey = randomBytes(32).toString('base64')
  for (let i = 0; i < 3; i++) fleet.push(await startKeyvalet(config, { files, masterKey }))
  const now = Date.now()
  for (const kv of fleet) kv.now = now
  await instance(0).setSecret('client-secret', oauth.clientSecret)
  await instance(0).setSecret('github-app-key', githubApp.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString())
})
after(async () => {
  for (const kv of fleet) await kv.close()
  fleet = []
  await api?.close()
  await gh?.close()
  await oauth?.close()
  await server?.stop()
})

function instance(i: number): TestKeyvalet {
  const kv = fleet[i]
  if (kv === undefined) throw new Error(`no instance ${i}`)
  return kv
}

/**
 * 100 requests at once, spread round-robin over the three instances. (A request slower than
 * audit.open_after_ms also has an open record: the records of a burst are its closing ones.)
 */
async function burst(key: string, path: string) {
  return Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const res = await request(`${instance(i % 3).url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, text: await res.body.text() }
  }))
}

describe('refreshes and mints once per token across a fleet of three on PostgreSQL', () => {
  it('100 concurrent requests over three instances on an expired OAuth user token bring exactly one refresh, and every request carries the refreshed token', async () => {
    oauth.loginAs = 'alice'
    const run = inProcessCli(instance(0), ['oauth', 'connect', '--connector', 'crm', '--user', 'alice', '--no-open', '--timeout', '30s'])
    const url = await run.stdout.waitFor(/http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+/, run.code)
    assert.equal((await fetch(url)).status, 200)
    assert.equal(await run.code, 0, run.stderr.text)
    const connected = await readUserToken(instance(0).runtime.vault, 'crm', 'alice')
    const { key, session } = await instance(0).mintKey(['crm:read'])
    for (const kv of fleet) assert.equal((await request(`${kv.url}/crm/warm`, { headers: { authorization: `Bearer ${key}` } })).statusCode, 200)

    for (const kv of fleet) kv.now += 600_000 // the access token has expired everywhere
    const refreshes = oauth.counts.refresh_token
    const received = api.received.length
    const answers = await burst(key, '/crm/contacts')
    assert.deepEqual(answers.filter((a) => a.status !== 200), [], 'every request succeeded')
    assert.equal(oauth.counts.refresh_token - refreshes, 1, 'one refresh at the authorization server for the whole fleet')
    assert.equal(oauth.counts.refresh_reused, 0)

    const refreshed = await readUserToken(instance(2).runtime.vault, 'crm', 'alice')
    assert.notEqual(refreshed.access_token, connected.access_token)
    const sent = api.received.slice(received)
    assert.equal(sent.length, 100)
    assert.ok(sent.every((r) => r.headers.authorization === `Bearer ${refreshed.access_token}`), 'the upstream got the one refreshed token from every instance')
    assert.ok(answers.every((a) => !a.text.includes(refreshed.access_token)), 'the sandbox never sees it')
    const records = (await instance(0).audit()).filter((r) => r.session === session && r.phase !== 'open' && r.path === '/crm/contacts')
    assert.equal(records.length, 100)
    assert.ok(records.every((r) => r.decision === 'allow' && r.status === 200 && r.credential === 'oauth_user:crm:alice'))
  })

  it('100 concurrent requests over three instances with no client-credentials token yet bring exactly one token request; the token is shared through the vault', async () => {
    const { key, session } = await instance(0).mintKey(['svc:read'])
    const grants = oauth.counts.client_credentials
    const received = api.received.length
    const answers = await burst(key, '/svc/reports')
    assert.deepEqual(answers.filter((a) => a.status !== 200), [])
    assert.equal(oauth.counts.client_credentials - grants, 1, 'one token request for the whole fleet')
    const [issued] = oauth.issuedTo(`client:${oauth.clientId}`).slice(-1)
    assert.ok(api.received.slice(received).every((r) => r.headers.authorization === `Bearer ${issued}`))
    const records = (await instance(1).audit()).filter((r) => r.session === session && r.phase !== 'open')
    assert.equal(records.length, 100)
    assert.ok(records.every((r) => r.status === 200 && typeof r.credential === 'string' && r.credential.startsWith('oauth_client:svc:')))
    for (const r of records) assert.ok(!JSON.stringify(r).includes(issued ?? 'x'))
    // The shared record is keyvalet's own: `secret list` leaves it out.
    assert.ok((await instance(2).runtime.vault.list()).some((s) => s.name.startsWith('keyvalet.token.')))
  })

  it('100 concurrent requests over three instances bring exactly one GitHub App installation token mint', async () => {
    const { key, session } = await instance(0).mintKey(['github:read'])
    const mints = gh.mints.length
    const answers = await burst(key, '/github/repos/acme/app')
    assert.deepEqual(answers.filter((a) => a.status !== 200).map((a) => a.text.slice(0, 200)), [])
    assert.equal(gh.mints.length - mints, 1, 'one mint for the whole fleet')
    const apiCalls = gh.received.filter((r) => r.url === '/repos/acme/app').slice(-100)
    const tokens = new Set(apiCalls.map((r) => gh.tokenOf(r.authorization)))
    assert.equal(tokens.size, 1, 'every instance sent the one minted token')
    const records = (await instance(2).audit()).filter((r) => r.session === session && r.phase !== 'open')
    assert.equal(records.length, 100)
    assert.ok(records.every((r) => r.status === 200 && String(r.credential).startsWith('github_app:4242:77')))
  })
})
