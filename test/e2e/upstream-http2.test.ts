import assert from 'node:assert/strict'
import { createSecureServer, createServer as createH2cServer, type Http2SecureServer, type Http2Server } from 'node:http2'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'upstream_h2_secret_0123456789abcdef'
const HOST = 'both.example.test'

describe('upstream_http: HTTP/2 to upstreams that offer it, HTTP/1.1 otherwise, or one forced per connector', () => {
  const pki = upstreamCertificate(HOST)
  // An upstream that speaks both (ALPN h2 preferred, HTTP/1.1 allowed), recording each request's version and connection.
  let server: Http2SecureServer
  let port = 0
  const seen: { version: string; authorization: string | undefined; connection: number }[] = []
  const sockets = new Map<object, number>()
  let h1Only: Upstream
  // Cleartext HTTP/2 only (h2c, prior knowledge): what upstream_http: h2 speaks to an http:// upstream.
  let h2c: Http2Server
  let h2cPort = 0
  const h2cSeen: { version: string; authorization: string | undefined }[] = []
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    server = createSecureServer({ ...pki.tls, allowHTTP1: true }, (req, res) => {
      // One HTTP/2 connection is one session (req.socket stands for the stream there).
      const socket: object = req.httpVersionMajor === 2 ? req.stream.session ?? req.stream : req.socket
      if (!sockets.has(socket)) sockets.set(socket, sockets.size)
      seen.push({ version: req.httpVersion, authorization: req.headers.authorization, connection: sockets.get(socket) ?? -1 })
      // Slow enough that concurrent requests overlap on the upstream.
      setTimeout(() => res.end(JSON.stringify({ version: req.httpVersion, authorization: req.headers.authorization })), 50)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
    h1Only = await startUpstream({ tls: pki.tls })
    h2c = createH2cServer((req, res) => {
      h2cSeen.push({ version: req.httpVersion, authorization: req.headers.authorization })
      res.end('h2c')
    })
    await new Promise<void>((resolve) => h2c.listen(0, '127.0.0.1', resolve))
    h2cPort = (h2c.address() as { port: number }).port
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    const connector = (name: string, upstreamPort: number, http: string | undefined): string => `  ${name}:
    upstream: https://${HOST}:${upstreamPort}
${http === undefined ? '' : `    upstream_http: ${http}\n`}    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
${connector('auto', port, undefined)}${connector('h1', port, 'h1')}${connector('h2', port, 'h2')}${connector('h2only', h1Only.port, 'h2')}${connector('autoh1', h1Only.port, 'auto')}  cleartext:
    upstream: http://${HOST}:${h2cPort}
    allow_insecure: true
    upstream_http: h2
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('token', SECRET)
    key = (await kv.mintKey(['auto:read', 'h1:read', 'h2:read', 'h2only:read', 'autoh1:read', 'cleartext:read'])).key
  })
  after(async () => {
    await kv.close()
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
    })
    await h1Only.close()
    await new Promise<void>((resolve) => {
      h2c.close(() => resolve())
    })
    await dns.close()
  })

  const get = async (connector: string): Promise<{ status: number; body: string; error: string | null }> => {
    const res = await fetch(`${kv.url}/${connector}/x`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.status, body: await res.text(), error: res.headers.get('x-keyvalet-error') }
  }

  it('auto (the default): the upstream that prefers HTTP/2 gets it, with the credential; many concurrent requests share one connection', async () => {
    const before = seen.length
    const answers = await Promise.all(Array.from({ length: 16 }, () => get('auto')))
    for (const a of answers) {
      assert.equal(a.status, 200)
      assert.equal(JSON.parse(a.body).version, '2.0')
      assert.ok(!a.body.includes(SECRET), 'the echoed credential is masked')
    }
    const requests = seen.slice(before)
    assert.ok(requests.every((r) => r.version === '2.0' && r.authorization === `Bearer ${SECRET}`))
    assert.equal(new Set(requests.map((r) => r.connection)).size, 1, 'multiplexed on one connection')
    assert.equal((await kv.audit()).at(-1)?.connector, 'auto')
  })

  it('auto falls back to HTTP/1.1 with an upstream that offers only that', async () => {
    const a = await get('autoh1')
    assert.equal(a.status, 200)
    assert.equal(h1Only.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
  })

  it('h1 keeps HTTP/1.1 with an upstream that offers both', async () => {
    const a = await get('h1')
    assert.equal(a.status, 200)
    assert.equal(JSON.parse(a.body).version, '1.1')
    assert.equal(seen.at(-1)?.version, '1.1')
  })

  it('h2 speaks HTTP/2; an upstream that does not choose it is refused, audited, and sent nothing', async () => {
    assert.equal(JSON.parse((await get('h2')).body).version, '2.0')
    const before = h1Only.received.length
    const refused = await get('h2only')
    assert.equal(refused.status, 502)
    assert.equal(refused.error, 'upstream_unreachable')
    assert.equal(h1Only.received.length, before)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.connector, record?.error, record?.detail?.upstream_error], ['h2only', 'upstream_unreachable', 'UPSTREAM_NOT_H2'])
  })

  it('h2 to an http:// upstream speaks cleartext HTTP/2 with prior knowledge', async () => {
    const a = await get('cleartext')
    assert.equal(a.status, 200)
    assert.equal(a.body, 'h2c')
    assert.deepEqual(h2cSeen.at(-1), { version: '2.0', authorization: `Bearer ${SECRET}` })
  })
})
