import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

describe('egress: keyvalet resolves names itself and dials only what it checked', () => {
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = await startUpstream()
    dns = await startDnsServer({ 'api.internal.test': { a: ['127.0.0.1'], ttl: 0 } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  named:
    upstream: http://api.internal.test:${upstream.port}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: named-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
  loopback:
    upstream: ${upstream.url}
    allow_insecure: true
    credential: { secret: named-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
  metadata:
    upstream: http://169.254.169.254
    allow_insecure: true
    credential: { secret: named-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
    await kv.setSecret('named-token', 'named-secret-value-123')
    key = (await kv.mintKey(['named:read', 'loopback:read', 'metadata:read'])).key
  })
  after(async () => {
    await kv.close()
    await dns.close()
    await upstream.close()
  })

  const get = async (path: string) => {
    const res = await request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, code: res.headers['x-keyvalet-error'], text: await res.body.text() }
  }

  it('resolves the upstream name with its own resolver and attaches the credential', async () => {
    const before = dns.queries
    const r = await get('/named/x')
    assert.equal(r.status, 200)
    assert.ok(dns.queries > before, 'asked the configured DNS server')
    assert.equal(upstream.received.at(-1)?.headers.authorization, 'Bearer named-secret-value-123')
    assert.equal(upstream.received.at(-1)?.headers.host, `api.internal.test:${upstream.port}`)
    assert.equal((await kv.audit()).at(-1)?.decision, 'allow')
  })

  it('refuses a loopback upstream that its connector does not allow, before any byte is sent', async () => {
    const before = upstream.received.length
    const r = await get('/loopback/x')
    assert.equal(r.status, 403)
    assert.equal(r.code, 'upstream_address_refused')
    assert.ok(!r.text.includes('127.0.0'), 'the sandbox is not told internal addresses')
    assert.equal(upstream.received.length, before)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.error, 'upstream_address_refused')
    assert.equal((record?.detail as { range?: string }).range, '127.0.0.0/8')
  })

  it('refuses the cloud metadata address', async () => {
    const r = await get('/metadata/latest/meta-data/')
    assert.equal(r.status, 403)
    assert.equal(r.code, 'upstream_address_refused')
    assert.equal(((await kv.audit()).at(-1)?.detail as { range?: string }).range, '169.254.0.0/16')
  })

  it('refuses a name whose answer changes to a forbidden address (DNS rebinding)', async () => {
    // New connections only: the pool may reuse a connection to the address it already checked.
    await kv.close()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  named:
    upstream: http://api.internal.test:${upstream.port}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: named-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
    await kv.setSecret('named-token', 'named-secret-value-123')
    key = (await kv.mintKey(['named:read'])).key
    dns.table['api.internal.test'] = { a: ['127.0.0.2'], ttl: 0 }
    const before = upstream.received.length
    const r = await get('/named/x')
    assert.equal(r.status, 403)
    assert.equal(r.code, 'upstream_address_refused')
    assert.equal(upstream.received.length, before)
    dns.table['api.internal.test'] = { a: ['127.0.0.1'], ttl: 0 }
  })
})
