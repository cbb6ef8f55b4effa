import assert from 'node:assert/strict'
import type { ClientHttp2Session } from 'node:http2'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { h2Request, h2Session } from '../helpers/h2-client.ts'
import * as F from '../helpers/h2-frames.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'stall.example.test'

/**
 * An upstream that stalls, met by an HTTP/2 client inside an intercepted tunnel: answered as an
 * HTTP/1.1 client is for the same stall (test/e2e/upstream-faults.test.ts), one record per stream,
 * and the connection's other streams go on being served.
 */
// The shorter limit leaves room for the other streams' own round trips on a loaded machine (400 ms did not, at load 15).
for (const limits of [{ upstream: 1500, idle: 20_000 }, { upstream: 20_000, idle: 1500 }]) {
  const shorter = limits.upstream < limits.idle ? 'upstream_timeout' : 'idle_timeout'
  describe(`a stalled upstream under an HTTP/2 stream (${shorter} the shorter)`, () => {
    const pki = upstreamCertificate(HOST)
    let upstream: Upstream
    let dns: DnsServer
    let kv: TestKeyvalet
    let key: string

    before(async () => {
      upstream = await startUpstream({
        tls: pki.tls,
        handler: (req, res) => {
          if (req.url === '/stall-head') return // never answers
          if (req.url === '/stall-body') return void res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100_000 }).write('b'.repeat(1000))
          res.end('fine')
        },
      })
      dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
      kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
limits: { upstream_timeout_ms: ${limits.upstream}, idle_timeout_ms: ${limits.idle} }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
      await kv.setSecret('token', 'stall_test_secret_0123456789')
      key = (await kv.mintKey(['api:read'])).key
    })
    after(async () => {
      await kv.close()
      await upstream.close()
      await dns.close()
    })

    const session = (): Promise<ClientHttp2Session> => {
      assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
      return h2Session({ proxyPort: Number(new URL(kv.forwardUrl).port), authority: `${HOST}:${upstream.port}`, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem })
    }
    // The request's own records: a request in flight past audit.open_after_ms also has its open record first (phase open), not a second answer.
    async function recordsFor(path: string): Promise<AuditRecord[]> {
      const answered = async (): Promise<AuditRecord[]> => (await kv.audit()).filter((r) => r.path === path && r.phase !== 'open')
      for (let i = 0; i < 300; i++) {
        const found = await answered()
        if (found.length > 0) {
          await new Promise((r) => setTimeout(r, 300))
          return answered()
        }
        await new Promise((r) => setTimeout(r, 20))
      }
      throw new Error(`no audit record for ${path}`)
    }

    it(`an upstream that never answers: the stream is answered 504 ${shorter}, audited once; the connection's other streams are served meanwhile and after`, async () => {
      const s = await session()
      try {
        const started = Date.now()
        const stalled = h2Request(s, { ':method': 'GET', ':path': '/stall-head' }, undefined, 15_000)
        // Another stream on the same connection while the first one waits.
        const other = await h2Request(s, { ':method': 'GET', ':path': '/meanwhile' })
        assert.deepEqual([other.status, other.body], [200, 'fine'])
        const answer = await stalled
        assert.ok(Date.now() - started < 10_000)
        assert.equal(answer.status, 504)
        assert.equal(answer.headers['x-keyvalet-error'], shorter)
        const records = await recordsFor('/stall-head')
        assert.equal(records.length, 1, JSON.stringify(records))
        assert.deepEqual([records[0]?.decision, records[0]?.error, records[0]?.status, records[0]?.upstream_status], ['error', shorter, 504, null])
        assert.ok(upstream.received.some((r) => r.url === '/stall-head'), 'the upstream had the request')
        const after = await h2Request(s, { ':method': 'GET', ':path': '/after' })
        assert.deepEqual([after.status, after.body], [200, 'fine'])
      } finally {
        s.close()
      }
    })

    // A body that has begun is bounded by the idle timeout alone (event streams may be quiet for long), as over HTTP/1.1.
    if (shorter === 'idle_timeout') it('a body that stops moving: the stream is cut (RST_STREAM, never END_STREAM) at the idle timeout, audited once idle_timeout; other streams on the connection are served meanwhile', async () => {
      assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
      const raw = await F.RawH2.open({ proxyPort: Number(new URL(kv.forwardUrl).port), authority: `${HOST}:${upstream.port}`, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem })
      try {
        raw.write(F.headers(1, F.request(`${HOST}:${upstream.port}`, '/stall-body'), { endStream: true }))
        await raw.until(() => raw.frames.some((f) => f.streamId === 1 && f.type === F.FRAME.DATA))
        // Another stream on the same connection while the first one stalls.
        raw.write(F.headers(3, F.request(`${HOST}:${upstream.port}`, '/meanwhile'), { endStream: true }))
        await raw.until(() => raw.frames.some((f) => f.streamId === 3 && (f.flags & F.FLAG.END_STREAM) !== 0))
        assert.equal(raw.closed, false)
        await raw.until(() => raw.resets().has(1), 10_000)
        const frames = raw.frames.filter((f) => f.streamId === 1)
        assert.ok(frames.some((f) => f.type === F.FRAME.HEADERS), 'the head was relayed')
        assert.equal(frames.filter((f) => f.type === F.FRAME.DATA).reduce((n, f) => n + f.payload.length, 0), 1000)
        assert.ok(frames.every((f) => (f.flags & F.FLAG.END_STREAM) === 0 || f.type === F.FRAME.RST_STREAM), 'never ended as if whole')
        const records = await recordsFor('/stall-body')
        assert.equal(records.length, 1, JSON.stringify(records))
        assert.deepEqual([records[0]?.decision, records[0]?.error, records[0]?.status, records[0]?.upstream_status, records[0]?.bytes_out], ['error', 'idle_timeout', 200, 200, 1000])
      } finally {
        raw.close()
      }
    })
  })
}
