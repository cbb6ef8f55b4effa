import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { request } from 'undici'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { makeTestPki } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const run = promisify(execFile)

describe('credential kinds, rotation, vault integrity and upstream TLS', () => {
  const pki = makeTestPki()
  let plain: Upstream
  let tls: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    plain = await startUpstream()
    tls = await startUpstream({ tls: { key: pki.key, cert: pki.cert } })
    const caFile = 'upstream-ca.pem'
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  git:
    upstream: ${plain.url}/git
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: git-token, inject: basic, username: x-access-token }
    rules: [{ id: fetch, methods: [GET, POST], path: /acme/app.git/**, severity: read }]
  maps:
    upstream: ${plain.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: maps-key, inject: query, param: key }
    rules: [{ id: geocode, methods: [GET], path: /geocode, severity: read }]
  llm:
    upstream: ${plain.url}/v1
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: llm-key, inject: header, header: x-api-key, template: "Key {secret}" }
    rules: [{ id: messages, methods: [POST], path: /messages, severity: write }]
  secure:
    upstream: ${tls.url}
    ca_file: ${caFile}
    allow_addresses: [127.0.0.1/32]
    credential: { secret: secure-token, inject: bearer }
    rules: [{ id: read, methods: [GET], path: /data, severity: read }]
  untrusted:
    upstream: ${tls.url}
    allow_addresses: [127.0.0.1/32]
    credential: { secret: secure-token, inject: bearer }
    rules: [{ id: read, methods: [GET], path: /data, severity: read }]
`, { files: { [caFile]: pki.caCert } })
    for (const [name, value] of [['git-token', 'gho_gitTokenValue123456'], ['maps-key', 'AIzaMapsKey987654321'], ['llm-key', 'sk-ant-llmKey-555555555'], ['secure-token', 'secure-bearer-000111222']]) {
      await kv.setSecret(name as string, value as string)
    }
    key = (await kv.mintKey(['git:read', 'maps:read', 'llm:write', 'secure:read', 'untrusted:read'])).key
  })
  after(async () => {
    await kv.close()
    await plain.close()
    await tls.close()
  })

  it('basic: a git-style client sends the task key as its password; the upstream sees the real one', async () => {
    const auth = Buffer.from(`x-access-token:${key}`).toString('base64')
    const res = await request(`${kv.url}/git/acme/app.git/info/refs?service=git-upload-pack`, { headers: { authorization: `Basic ${auth}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 200)
    const seen = plain.received.at(-1)
    assert.equal(seen?.url, '/git/acme/app.git/info/refs?service=git-upload-pack')
    assert.equal(seen?.headers.authorization, `Basic ${Buffer.from('x-access-token:gho_gitTokenValue123456').toString('base64')}`)
    assert.equal((await kv.audit()).at(-1)?.credential, 'git-token')
  })

  it('query: the sandbox value for the parameter is replaced, never forwarded', async () => {
    const res = await request(`${kv.url}/maps/geocode?address=x&key=sandbox-guess`, { headers: { authorization: `Bearer ${key}` } })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200)
    const url = new URL(plain.received.at(-1)?.url ?? '', 'http://x')
    assert.deepEqual(url.searchParams.getAll('key'), ['AIzaMapsKey987654321'])
    assert.equal(url.searchParams.get('address'), 'x')
    assert.ok(!text.includes('AIzaMapsKey987654321'), 'the echoed query is redacted')
    assert.deepEqual((await kv.audit()).at(-1)?.query_keys, ['address', 'key'])
  })

  it('header: the task key in x-api-key (as model SDKs send it) is swapped for the templated real key', async () => {
    const res = await request(`${kv.url}/llm/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: '{"model":"m"}' })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200)
    assert.equal(plain.received.at(-1)?.headers['x-api-key'], 'Key sk-ant-llmKey-555555555')
    assert.equal(plain.received.at(-1)?.body.toString(), '{"model":"m"}')
    assert.ok(!text.includes('sk-ant-llmKey-555555555'))
  })

  it('rotation: secret set on an existing name takes effect on the next request, no restart', async () => {
    await kv.setSecret('maps-key', 'AIzaRotatedKey000000001')
    const res = await request(`${kv.url}/maps/geocode?address=y`, { headers: { authorization: `Bearer ${key}` } })
    await res.body.dump()
    assert.equal(new URL(plain.received.at(-1)?.url ?? '', 'http://x').searchParams.get('key'), 'AIzaRotatedKey000000001')
  })

  it('verifies upstream TLS against the connector CA, and refuses an upstream it cannot verify', async () => {
    const ok = await request(`${kv.url}/secure/data`, { headers: { authorization: `Bearer ${key}` } })
    await ok.body.dump()
    assert.equal(ok.statusCode, 200)
    assert.equal(tls.received.at(-1)?.headers.authorization, 'Bearer secure-bearer-000111222')
    const before = tls.received.length
    const bad = await request(`${kv.url}/untrusted/data`, { headers: { authorization: `Bearer ${key}` } })
    const body = (await bad.body.json()) as { error: { code: string; message: string } }
    assert.equal(bad.statusCode, 502)
    assert.equal(body.error.code, 'upstream_tls_failed')
    assert.equal(tls.received.length, before, 'no request was sent over the unverified connection')
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.decision, 'error')
    assert.equal(record?.error, 'upstream_tls_failed')
  })

  it('refuses a tampered vault record: nothing is sent without its credential', async () => {
    const db = new DatabaseSync(kv.runtime.config.databasePath)
    const row = db.prepare(`SELECT envelope FROM secrets WHERE name = 'llm-key'`).get() as { envelope: Uint8Array }
    const envelope = Buffer.from(row.envelope)
    envelope[envelope.length - 1] = (envelope[envelope.length - 1] ?? 0) ^ 0x01
    db.prepare(`UPDATE secrets SET envelope = ? WHERE name = 'llm-key'`).run(envelope)
    db.close()
    const before = plain.received.length
    const res = await request(`${kv.url}/llm/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: '{}' })
    const text = await res.body.text()
    assert.equal(res.statusCode, 502)
    assert.equal(res.headers['x-keyvalet-error'], 'credential_unavailable')
    assert.ok(!text.includes('tamper') && !text.includes('llm-key'), 'the sandbox is not told vault details')
    assert.equal(plain.received.length, before)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.error, 'credential_unavailable')
    assert.equal((record?.detail as { why?: string } | undefined)?.why, 'record_tampered')
  })

  it('works with Python urllib as the sandbox client', async () => {
    const script = `import urllib.request, sys
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=10) as r:
    print(r.status, r.read().decode())`
    const { stdout } = await run('python3', ['-c', script, `${kv.url}/maps/geocode?address=py`, key], { encoding: 'utf8', timeout: 15_000 })
    assert.match(stdout, /^200 /)
    assert.ok(!stdout.includes('AIzaRotatedKey000000001'))
    assert.equal(new URL(plain.received.at(-1)?.url ?? '', 'http://x').searchParams.get('address'), 'py')
    assert.equal((await kv.audit()).at(-1)?.rule, 'geocode')
  })
})
