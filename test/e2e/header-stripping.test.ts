import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { ROUTING_HEADERS } from '../../src/proxy/routing-headers.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { exchange, openSocket, openTunnel, parseResponse } from '../helpers/raw-http.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'api.example.test'
const SECRET = 'svc-real-secret-0123456789abcdef'

/**
 * One case per header keyvalet strips: each request carries the header with a value seen nowhere
 * else, and a control header that must arrive. The routing headers are generated from their list
 * in the code (plus, named here, those an upstream is known to act on, so that dropping one from
 * the list fails); hop-by-hop headers (RFC 9110 §7.6.1) and credential slots are named here.
 */
interface StripCase {
  readonly name: string
  /** Header lines to send (the value placeholder `V` is replaced by the case's unique value). */
  readonly lines: readonly string[]
  /** A POST with this body instead of a GET. */
  readonly body?: string
  readonly modes?: readonly Mode[]
}
type Mode = 'gateway' | 'forward'

const listedByConnection = 'x-listed-by-connection'
const cases: StripCase[] = [
  ...ROUTING_HEADERS.map((h) => ({ name: h.prefix === true ? `${h.name}probe` : h.name, lines: [`${h.prefix === true ? `${h.name}probe` : h.name}: V`] })),
  ...[
    'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-uri',
    'x-forwarded-path', 'x-forwarded-scheme', 'x-forwarded-server', 'x-real-ip', 'x-original-url', 'x-original-uri', 'x-original-host',
    'x-rewrite-url', 'x-envoy-original-path', 'x-envoy-internal', 'x-http-method-override', 'x-http-method', 'x-method-override',
    'x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-cluster-client-ip', 'x-proxyuser-ip', 'x-host', 'client-ip', 'via',
  ].map((name) => ({ name: `${name} (named)`, lines: [`${name}: V`] })),
  ...['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization'].map((name): StripCase => {
    if (name === 'transfer-encoding') return { name, lines: ['transfer-encoding: V, chunked'], body: '0\r\n\r\n' }
    if (name === 'connection') return { name, lines: [`connection: V, ${listedByConnection}`, `${listedByConnection}: V`] }
    return { name, lines: [`${name}: V`] }
  }),
  ...['authorization', 'x-api-key', 'api-key', 'cookie'].map((name) => ({ name, lines: [name === 'authorization' ? 'authorization: Bearer V' : `${name}: V`], modes: name === 'authorization' ? ['forward'] as const : undefined })),
  { name: 'the connector credential header (x-service-token)', lines: ['x-service-token: Token V'] },
  { name: 'accept-encoding', lines: ['accept-encoding: V'] },
  { name: 'expect', lines: ['expect: 100-continue'], body: '{}' },
  { name: 'host', lines: [], modes: ['gateway'] },
  { name: 'authorization carrying the task key', lines: [], modes: ['gateway'] },
]

describe('every header keyvalet strips, end to end, in gateway and forward mode', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let gatewayPort: number
  let proxyPort: number

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: svc-token, inject: header, header: x-service-token, template: "Token {secret}" }
    rules:
      - { id: trusted-proto, methods: [GET], path: /proto, severity: read,
          headers: { x-forwarded-proto: { pattern: https, required: true }, cookie: { pattern: ".*" } } }
      - { id: any, methods: [GET, POST], path: /things/**, severity: read }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('svc-token', SECRET)
    key = (await kv.mintKey(['api:read'])).key
    gatewayPort = Number(new URL(kv.url).port)
    proxyPort = Number(new URL(kv.forwardUrl ?? '').port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  /** Sends one request by hand; returns what the upstream, the client and the audit log saw of it. */
  async function send(mode: Mode, path: string, lines: readonly string[], body?: string) {
    const seenBefore = upstream.received.length
    const auditBefore = (await kv.audit()).length
    const authority = `${HOST}:${upstream.port}`
    const hasHost = lines.some((l) => l.toLowerCase().startsWith('host:'))
    const head = [
      `${body === undefined ? 'GET' : 'POST'} ${mode === 'gateway' ? `/api${path}` : path} HTTP/1.1`,
      ...(mode === 'gateway' && !hasHost ? [`Host: sv-host-${randomBytes(4).toString('hex')}.example`] : mode === 'forward' ? [`Host: ${authority}`] : []),
      ...(mode === 'gateway' && !lines.some((l) => /^authorization:/i.test(l)) ? [`Authorization: Bearer ${key}`] : []),
      ...lines,
      ...(body === undefined || lines.some((l) => /^transfer-encoding:/i.test(l)) ? [] : [`Content-Length: ${Buffer.byteLength(body)}`, 'Content-Type: application/json']),
      'X-Kept: kept-value',
    ]
    // One request per connection: the peer closes after the answer (a hop-by-hop Connection value under test may not say so).
    const socket = mode === 'gateway'
      ? await openSocket(gatewayPort)
      : await openTunnel({ proxyPort, authority, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem ?? '' })
    const text = await exchange(socket, `${head.join('\r\n')}\r\n\r\n${body ?? ''}`, { timeoutMs: 1500 })
    const records = (await kv.audit()).slice(auditBefore)
    return { client: parseResponse(text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '')), upstream: upstream.received.slice(seenBefore), records }
  }

  for (const mode of ['gateway', 'forward'] as const) {
    for (const c of cases) {
      if (c.modes !== undefined && !c.modes.includes(mode)) continue
      it(`${mode}: ${c.name} does not reach the upstream`, async () => {
        const value = `sv-${randomBytes(6).toString('hex')}`
        const r = await send(mode, '/things/1', c.lines.map((l) => l.replaceAll('V', value)), c.body)
        assert.equal(r.client.status, 200, r.client.body)
        assert.equal(r.upstream.length, 1, 'the request reached the upstream once')
        const seen = r.upstream[0]
        assert.ok(seen)
        assert.equal(seen.headers['x-kept'], 'kept-value', 'the control header arrived')
        assert.equal(seen.headers['x-service-token'], `Token ${SECRET}`, 'the real credential was attached')
        const raw = seen.rawHeaders.join('\n')
        assert.ok(!raw.includes(value), `the sandbox value reached the upstream: ${raw}`)
        assert.ok(!raw.includes(key), 'the task key never reaches the upstream')
        assert.ok(!raw.includes(listedByConnection), 'a header named in Connection is dropped with it')
        for (const line of c.lines) {
          const name = line.slice(0, line.indexOf(':')).toLowerCase()
          if (!['x-service-token', 'accept-encoding', 'host', 'connection', 'transfer-encoding'].includes(name)) {
            assert.equal(seen.headers[name], undefined, `${name} must not reach the upstream`)
          }
        }
        if (c.name === 'host') assert.equal(seen.headers.host, `${HOST}:${upstream.port}`)
        if (c.name === 'accept-encoding') assert.equal(seen.headers['accept-encoding'], 'identity')
        assert.ok(!r.client.body.includes(value), 'nor does it come back in the echo')
        assert.equal(r.records.length, 1, 'one audit record')
        assert.deepEqual([r.records[0]?.mode, r.records[0]?.decision, r.records[0]?.rule, r.records[0]?.credential], [mode, 'allow', 'any', 'svc-token'])
      })
    }

    it(`${mode}: a routing header the allowing rule constrains goes through; a credential slot never does`, async () => {
      const r = await send(mode, '/proto', ['x-forwarded-proto: https', 'cookie: session=sv-cookie', 'x-forwarded-host: sv-not-named.example'])
      assert.equal(r.client.status, 200, r.client.body)
      const seen = r.upstream[0]
      assert.equal(seen?.headers['x-forwarded-proto'], 'https')
      assert.equal(seen?.headers.cookie, undefined)
      assert.equal(seen?.headers['x-forwarded-host'], undefined, 'only the named header goes through')
      assert.deepEqual([r.records.length, r.records[0]?.rule], [1, 'trusted-proto'])
      const refused = await send(mode, '/proto', ['x-forwarded-proto: http'])
      assert.equal(refused.client.status, 403)
      assert.equal(refused.upstream.length, 0)
      assert.equal(refused.records[0]?.reason, 'header_not_allowed')
    })
  }
})
