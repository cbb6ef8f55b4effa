import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { exchange, openSocket, openTunnel, parseResponse } from '../helpers/raw-http.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'api.example.test'

/** Lets records that are still on their way land before they are counted. */
const settle = () => new Promise((r) => setTimeout(r, 300))

describe('one audit record per refused request, however its bytes arrive', () => {
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
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
    key = (await kv.mintKey(['api:read'])).key
    gatewayPort = Number(new URL(kv.url).port)
    proxyPort = Number(new URL(kv.forwardUrl ?? '').port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  /** A request line and 2 MiB of headers, fed 1 KiB at a time. */
  const oversized = (target: string, host: string): string => {
    const line = `X-Padding: ${'a'.repeat(1000)}\r\n`
    return `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))}\r\n`
  }
  const proxyAuthorization = () => `Basic ${Buffer.from(`task:${key}`).toString('base64')}`
  const paths: [string, () => Promise<{ socket: Awaited<ReturnType<typeof openSocket>>; text: string; mode: string }>][] = [
    ['the gateway', async () => ({ socket: await openSocket(gatewayPort), text: oversized('/api/x', 'k'), mode: 'gateway' })],
    ['the forward listener', async () => ({ socket: await openSocket(proxyPort), text: oversized(`http://${HOST}:${upstream.port}/x`, `${HOST}:${upstream.port}`), mode: 'forward' })],
    ['an intercepted tunnel', async () => ({
      socket: await openTunnel({ proxyPort, authority: `${HOST}:${upstream.port}`, proxyAuthorization: proxyAuthorization(), ca: kv.caCertPem ?? '' }),
      text: oversized('/x', `${HOST}:${upstream.port}`),
      mode: 'forward',
    })],
  ]
  for (const [where, open] of paths) {
    it(`a 2 MiB header block on ${where}, in 1 KiB writes: one 400, one record, nothing upstream`, async () => {
      const auditBefore = (await kv.audit()).length
      const seenBefore = upstream.received.length
      const { socket, text, mode } = await open()
      const answer = parseResponse(await exchange(socket, text, { chunk: 1024, timeoutMs: 10_000 }))
      assert.equal(answer.status, 400)
      assert.equal(answer.headers['x-keyvalet-error'], 'request_malformed')
      await settle()
      const records = (await kv.audit()).slice(auditBefore)
      assert.equal(records.length, 1, `one record, not one per chunk: ${records.length}`)
      assert.deepEqual([records[0]?.mode, records[0]?.error, records[0]?.status, records[0]?.request_id], [mode, 'request_malformed', 400, answer.headers['x-keyvalet-request-id']])
      assert.equal(upstream.received.length, seenBefore)
    })
  }
})

describe('Proxy-Authorization: only Basic base64(user:key), canonical, with nothing after it', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let plain: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let gatewayPort: number
  let proxyPort: number

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    plain = await startUpstream()
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] }, 'plain.example.test': { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
  plain:
    upstream: http://plain.example.test:${plain.port}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
    key = (await kv.mintKey(['api:read', 'plain:read'])).key
    gatewayPort = Number(new URL(kv.url).port)
    proxyPort = Number(new URL(kv.forwardUrl ?? '').port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await plain.close()
    await dns.close()
  })

  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
  /** [what, the header value (undefined: no header), the error code] */
  const refused: [string, () => string | undefined, string][] = [
    ['no Proxy-Authorization', () => undefined, 'task_key_missing'],
    ['the bare key, no colon', () => `Basic ${b64(key)}`, 'task_key_malformed'],
    ['task:KEY followed by a tab and junk', () => `Basic ${b64(`task:${key}`)}\tjunk`, 'task_key_malformed'],
    ['task:KEY followed by a space and junk', () => `Basic ${b64(`task:${key}`)} junk`, 'task_key_malformed'],
    ['task:KEY followed by a comma and more credentials', () => `Basic ${b64(`task:${key}`)}, Basic ${b64('x:y')}`, 'task_key_malformed'],
    ['base64 without its padding', () => `Basic ${b64(`task:${key}`).replace(/=+$/, '')}`, 'task_key_malformed'],
    ['base64 with extra padding', () => `Basic ${b64(`task:${key}`)}==`, 'task_key_malformed'],
    ['base64 with a space inside', () => `Basic ${b64(`task:${key}`).slice(0, 8)} ${b64(`task:${key}`).slice(8)}`, 'task_key_malformed'],
    ['base64url instead of base64', () => `Basic ${Buffer.from(`task:${key}`).toString('base64url')}`, 'task_key_malformed'],
    ['base64 whose last character carries stray bits', () => `Basic ${b64(`task:${key}`).replace(/(.)(=*)$/, (_m, c: string, pad: string) => `${String.fromCharCode(c.charCodeAt(0) + 1)}${pad}`)}`, 'task_key_malformed'],
    ['the key as user with an empty password', () => `Basic ${b64(`${key}:`)}`, 'task_key_malformed'],
    ['bytes that are not UTF-8', () => `Basic ${Buffer.concat([Buffer.from('task\xff:', 'latin1'), Buffer.from(key)]).toString('base64')}`, 'task_key_malformed'],
    ['Bearer and the key', () => `Bearer ${key}`, 'task_key_malformed'],
    ['the key with no scheme', () => key, 'task_key_malformed'],
    ['Basic with nothing after it', () => 'Basic', 'task_key_malformed'],
    ['another scheme', () => `Digest username="task", response="${key}"`, 'task_key_malformed'],
  ]
  const accepted: [string, () => string][] = [
    ['task:KEY', () => `Basic ${b64(`task:${key}`)}`],
    ['another user name and a lower-case scheme', () => `basic ${b64(`agent-7:${key}`)}`],
  ]

  /** The same header on a CONNECT and on an absolute-form request. */
  async function both(value: string | undefined): Promise<{ connect: ReturnType<typeof parseResponse>; absolute: ReturnType<typeof parseResponse> }> {
    const header = value === undefined ? '' : `Proxy-Authorization: ${value}\r\n`
    const authority = `${HOST}:${upstream.port}`
    const connect = parseResponse(await exchange(await openSocket(proxyPort), `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${header}\r\n`, { timeoutMs: 1000 }))
    const absolute = parseResponse(await exchange(await openSocket(proxyPort), `GET http://plain.example.test:${plain.port}/x HTTP/1.1\r\nHost: plain.example.test:${plain.port}\r\n${header}Connection: close\r\n\r\n`))
    return { connect, absolute }
  }

  for (const [what, value, code] of refused) {
    it(`refuses ${what} with 407 (CONNECT and absolute-form), audited, nothing upstream`, async () => {
      const auditBefore = (await kv.audit()).length
      const seenBefore = upstream.received.length + plain.received.length
      const { connect, absolute } = await both(value())
      for (const answer of [connect, absolute]) {
        assert.equal(answer.status, 407)
        assert.match(answer.headers['proxy-authenticate'] ?? '', /^Basic realm="keyvalet"/)
        assert.equal(answer.headers['x-keyvalet-error'], code)
        const message = String(JSON.parse(answer.body).error.message)
        assert.match(message, /proxy/i, 'the message speaks of the proxy')
        assert.ok(!message.includes(key))
      }
      assert.equal(upstream.received.length + plain.received.length, seenBefore, 'nothing reached an upstream')
      const records = (await kv.audit()).slice(auditBefore)
      assert.deepEqual(records.map((r) => [r.mode, r.method, r.error, r.status, r.decision]), [['forward', 'CONNECT', code, 407, 'deny'], ['forward', 'GET', code, 407, 'deny']])
      assert.ok(!JSON.stringify(records).includes(key))
    })
  }
  for (const [what, value] of accepted) {
    it(`accepts ${what}`, async () => {
      const { connect, absolute } = await both(value())
      assert.equal(connect.status, 200)
      assert.equal(absolute.status, 200, absolute.body)
    })
  }

  const gatewayBasic: [string, () => string][] = [
    ['junk after the credentials', () => `Basic ${b64(`x:${key}`)}\tjunk`],
    ['base64 without its padding', () => `Basic ${b64(`x:${key}`).replace(/=+$/, '')}`],
    ['the bare key, no colon', () => `Basic ${b64(key)}`],
  ]
  for (const [what, value] of gatewayBasic) {
    it(`the gateway refuses Basic credentials with ${what} (401, task_key_malformed)`, async () => {
      const auditBefore = (await kv.audit()).length
      const answer = parseResponse(await exchange(await openSocket(gatewayPort), `GET /api/x HTTP/1.1\r\nHost: k\r\nAuthorization: ${value()}\r\nConnection: close\r\n\r\n`))
      assert.equal(answer.status, 401)
      assert.equal(answer.headers['x-keyvalet-error'], 'task_key_malformed')
      const records = (await kv.audit()).slice(auditBefore)
      assert.deepEqual(records.map((r) => [r.mode, r.error, r.status]), [['gateway', 'task_key_malformed', 401]])
    })
  }
  it('the gateway takes Basic x:KEY, and KEY: (the key as user, as some SDKs send it)', async () => {
    for (const credentials of [`x:${key}`, `${key}:`]) {
      const answer = parseResponse(await exchange(await openSocket(gatewayPort), `GET /api/x HTTP/1.1\r\nHost: k\r\nAuthorization: Basic ${b64(credentials)}\r\nConnection: close\r\n\r\n`))
      assert.equal(answer.status, 200, answer.body)
    }
  })
})

describe('requests without a task key cannot grow the audit log without bound', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  let gatewayPort: number
  let proxyPort: number
  const logged: { msg: string; fields: Record<string, unknown> | undefined }[] = []
  const log = { info() {}, error() {}, warn: (msg: string, fields?: Record<string, unknown>) => void logged.push({ msg, fields }) }

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
limits: { request_timeout_ms: 200, anonymous_records_per_source_per_minute: 20, anonymous_records_per_minute: 50 }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /things/**, severity: read }]
`, { log })
    key = (await kv.mintKey(['api:read'])).key
    gatewayPort = Number(new URL(kv.url).port)
    proxyPort = Number(new URL(kv.forwardUrl ?? '').port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  const anonymousGet = async (from?: string) => parseResponse(await exchange(await openSocket(gatewayPort, from), 'GET /api/things/1 HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n'))

  it('connections that never send a byte are answered and closed, counted, never chained', async () => {
    const auditBefore = (await kv.audit()).length
    const sockets = await Promise.all(Array.from({ length: 300 }, (_, i) => openSocket(i % 2 === 0 ? gatewayPort : proxyPort)))
    const closed = await Promise.all(sockets.map((s) => new Promise<string>((resolve) => {
      let data = ''
      s.on('data', (c: Buffer) => { data += c.toString('latin1') })
      s.on('close', () => resolve(data))
      setTimeout(() => { s.destroy(); resolve('still open') }, 10_000)
    })))
    assert.ok(closed.every((answer) => /^HTTP\/1\.1 408 /.test(answer)), 'every idle connection got 408 and was closed')
    await settle()
    assert.equal((await kv.audit()).length, auditBefore, 'no audit record for a connection without a request')
  })

  it('anonymous refusals are recorded up to the per-source and total budgets, then counted', async () => {
    const auditBefore = (await kv.audit()).length
    const seenBefore = upstream.received.length
    // One source: 200 requests without a key, 40 with a malformed one, 40 CONNECTs without one.
    for (let i = 0; i < 200; i++) assert.equal((await anonymousGet()).status, 401)
    for (let i = 0; i < 40; i++) {
      const answer = parseResponse(await exchange(await openSocket(gatewayPort), 'GET /api/things/1 HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer kvt_nope\r\nConnection: close\r\n\r\n'))
      assert.equal(answer.headers['x-keyvalet-error'], 'task_key_malformed')
    }
    for (let i = 0; i < 40; i++) {
      const answer = parseResponse(await exchange(await openSocket(proxyPort), 'CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n', { timeoutMs: 1000 }))
      assert.equal(answer.status, 407)
    }
    let records = (await kv.audit()).slice(auditBefore)
    assert.equal(records.length, 20, 'one source: its bucket of 20')
    // Many sources (other loopback addresses): each has a bucket, but all share one of 50.
    for (let s = 2; s < 32; s++) for (let i = 0; i < 5; i++) assert.equal((await anonymousGet(`127.0.0.${s}`)).status, 401)
    records = (await kv.audit()).slice(auditBefore)
    assert.equal(records.length, 50, 'all sources together: the shared bucket of 50')
    assert.ok(records.every((r) => r.session === null && r.decision === 'deny'))
    assert.equal(upstream.received.length, seenBefore)

    // A task key is accountable: its refusals are all recorded.
    for (let i = 0; i < 30; i++) {
      const answer = parseResponse(await exchange(await openSocket(gatewayPort), `GET /api/elsewhere HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`))
      assert.equal(answer.status, 403)
    }
    assert.equal((await kv.audit()).length - auditBefore, 80)

    // A minute later: one summary record per listener that held records back, then the next refusal is recorded again.
    kv.now += 61_000
    assert.equal((await anonymousGet()).status, 401)
    await settle()
    const after = (await kv.audit()).slice(auditBefore + 80)
    const summaries = after.filter((r) => r.reason === 'anonymous_records_suppressed')
    const held = { gateway: 200 + 40 + 150 - 50, forward: 40 }
    assert.deepEqual(summaries.map((r) => [r.mode, r.status, r.decision, (r.detail as { suppressed: number }).suppressed]).sort(), [['forward', 0, 'deny', held.forward], ['gateway', 0, 'deny', held.gateway]])
    const gatewaySources = (summaries.find((r) => r.mode === 'gateway')?.detail as { sources: { address: string; count: number }[] }).sources
    assert.deepEqual(gatewaySources[0], { address: '127.0.0.1', count: 200 + 40 - 20 })
    assert.equal(gatewaySources.length, 10, 'the busiest sources, named')
    assert.deepEqual(after.filter((r) => r.reason !== 'anonymous_records_suppressed').map((r) => r.error), ['task_key_missing'])

    // The operator log said the same, idle connections included.
    const line = logged.find((l) => l.msg === 'anonymous traffic counted instead of recorded')
    assert.equal(line?.fields?.idle_connections, 300)
  })
})
