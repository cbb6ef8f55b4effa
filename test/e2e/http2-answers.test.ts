import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { eventually } from '../helpers/eventually.ts'
import * as F from '../helpers/h2-frames.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { echo, startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'answers.example.test'
const SECRET = 'answers_test_secret_0123456789'

/**
 * The frames keyvalet answers an HTTP/2 stream with (src/proxy/h2/h2-exchange.ts), read off the
 * wire: an answer that ends at once leaves as HEADERS and DATA carrying END_STREAM (no trailer
 * round, no empty DATA frame after it), a bodiless one as HEADERS with END_STREAM; an answer
 * that streams sends its head before its body is whole; Expect: 100-continue is answered 100
 * before the final head. Each: what the upstream got, what the client got, what was audited.
 */
describe('HTTP/2 answers, frame by frame', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let authority: string
  let opts: { proxyPort: number; authority: string; proxyAuthorization: string; ca: string }

  before(async () => {
    upstream = await startUpstream({
      tls: pki.tls,
      handler: (req, res, received) => {
        if (req.url !== '/stream') return echo(req, res, received)
        // Two pieces 300 ms apart, no declared length: the head must reach the client before the second.
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first;')
        setTimeout(() => res.end('second'), 300)
      },
    })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: any, methods: [GET, HEAD, POST], path: /**, severity: write }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('token', SECRET)
    const { key } = await kv.mintKey(['api:write'])
    authority = `${HOST}:${upstream.port}`
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    opts = { proxyPort: Number(new URL(kv.forwardUrl).port), authority, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem }
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  /** The frames of one stream keyvalet sent, as [type, END_STREAM, payload length]. */
  function shape(raw: F.RawH2, streamId: number): [string, boolean, number][] {
    const names = Object.fromEntries(Object.entries(F.FRAME).map(([name, type]) => [type, name]))
    return raw.frames.filter((f) => f.streamId === streamId).map((f) => [names[f.type] ?? String(f.type), (f.flags & F.FLAG.END_STREAM) !== 0, f.payload.length])
  }

  async function lastRecord(from: number): Promise<AuditRecord> {
    return eventually(async () => (await kv.audit()).slice(from).at(-1), 'the stream\'s record')
  }

  it('an answer that ends at once: HEADERS, then its whole body in DATA with END_STREAM, nothing after', async () => {
    const audited = (await kv.audit()).length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, F.request(authority, '/small'), { endStream: true }))
      await raw.until(() => raw.answer(1).ended)
      // Anything more keyvalet would send on the stream (an empty DATA, trailers) comes in the same flight.
      await new Promise((resolve) => setTimeout(resolve, 100))
      const answer = raw.answer(1)
      assert.equal(answer.headers[':status'], '200')
      const frames = shape(raw, 1)
      assert.deepEqual(frames.map(([type, end]) => [type, end]), [['HEADERS', false], ['DATA', true]], JSON.stringify(frames))
      const echoed = JSON.parse(answer.body) as { url: string; headers: Record<string, string> }
      assert.equal(echoed.url, '/small')
      assert.equal(echoed.headers.authorization, `Bearer ${'*'.repeat(SECRET.length)}`, 'the echoed credential is masked')
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      const record = await lastRecord(audited)
      assert.deepEqual([record.decision, record.status, record.path, record.detail?.http_version], ['allow', 200, '/small', '2'])
    } finally {
      raw.close()
    }
  })

  it('an answer to HEAD: HEADERS alone, with END_STREAM', async () => {
    const audited = (await kv.audit()).length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, F.request(authority, '/head', [], 'HEAD'), { endStream: true }))
      await raw.until(() => raw.answer(1).ended)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.deepEqual(shape(raw, 1).map(([type, end]) => [type, end]), [['HEADERS', true]])
      assert.equal(raw.answer(1).headers[':status'], '200')
      assert.equal(upstream.received.at(-1)?.method, 'HEAD')
      const record = await lastRecord(audited)
      assert.deepEqual([record.method, record.status], ['HEAD', 200])
    } finally {
      raw.close()
    }
  })

  it('an answer that streams: the head and the first piece reach the client before the upstream has finished', async () => {
    const audited = (await kv.audit()).length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, F.request(authority, '/stream'), { endStream: true }))
      await raw.until(() => raw.answer(1).body.includes('first;'))
      assert.equal(raw.answer(1).ended, false, 'the first piece came while the answer was still open')
      assert.equal(raw.answer(1).headers[':status'], '200')
      await raw.until(() => raw.answer(1).ended)
      assert.equal(raw.answer(1).body, 'first;second')
      assert.equal(upstream.received.at(-1)?.url, '/stream')
      const record = await lastRecord(audited)
      assert.deepEqual([record.status, record.bytes_out], [200, 'first;second'.length])
    } finally {
      raw.close()
    }
  })

  it('Expect: 100-continue is answered 100 first; the body then goes upstream whole', async () => {
    const audited = (await kv.audit()).length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, F.request(authority, '/upload', [['expect', '100-continue'], ['content-length', '5']], 'POST')))
      await raw.until(() => raw.frames.some((f) => f.streamId === 1 && f.type === F.FRAME.HEADERS))
      const informational = raw.answer(1).headers[':status']
      assert.equal(informational, '100')
      raw.write(F.data(1, Buffer.from('hello'), true))
      await raw.until(() => raw.answer(1).ended)
      assert.equal(raw.answer(1).headers[':status'], '200', 'the final head follows')
      assert.equal(upstream.received.at(-1)?.body.toString(), 'hello')
      const record = await lastRecord(audited)
      assert.deepEqual([record.method, record.status, record.bytes_in], ['POST', 200, 5])
    } finally {
      raw.close()
    }
  })
})
