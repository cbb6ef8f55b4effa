import assert from 'node:assert/strict'
import { createServer as createHttpsServer, type Server } from 'node:https'
import { createSecureServer, type ClientHttp2Session, type Http2SecureServer, type IncomingHttpHeaders } from 'node:http2'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { eventually } from '../helpers/eventually.ts'
import * as F from '../helpers/h2-frames.ts'
import { h2Session } from '../helpers/h2-client.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const H2_HOST = 'h2.example.test'
const H1_HOST = 'h1.example.test'

/** What an upstream saw of one request, recorded from its head on: whether its body ever ended. */
interface Seen { url: string; authorization: string | undefined; bytes: number; complete: boolean; trailers: Record<string, unknown> }

function recorder(seen: Seen[]) {
  return (req: IncomingMessage | import('node:http2').Http2ServerRequest, res: ServerResponse | import('node:http2').Http2ServerResponse): void => {
    const r: Seen = { url: req.url ?? '', authorization: req.headers.authorization, bytes: 0, complete: false, trailers: {} }
    seen.push(r)
    req.on('data', (c: Buffer) => { r.bytes += c.length })
    req.on('end', () => {
      r.complete = true
      r.trailers = { ...req.trailers }
      res.end('received')
    })
    req.on('error', () => {})
  }
}

/**
 * An HTTP/2 client's request body that keyvalet refuses while it streams: a task key in it, and
 * trailers after it (undici, keyvalet's upstream client, sends none over HTTP/1.1 or HTTP/2, so such
 * a request is refused, request_unsupported, why request_trailers). Refused before the upstream has
 * the request whole, audited once, and keyvalet keeps serving.
 */
describe("an HTTP/2 client's request body refused as it streams", () => {
  const h2Pki = upstreamCertificate(H2_HOST)
  const h1Pki = upstreamCertificate(H1_HOST)
  const h2Seen: Seen[] = []
  const h1Seen: Seen[] = []
  let h2Upstream: Http2SecureServer
  let h1Upstream: Server
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  const ports = { h2: 0, h1: 0 }

  before(async () => {
    h2Upstream = createSecureServer(h2Pki.tls, recorder(h2Seen))
    h1Upstream = createHttpsServer(h1Pki.tls, recorder(h1Seen))
    await new Promise<void>((resolve) => h2Upstream.listen(0, '127.0.0.1', resolve))
    await new Promise<void>((resolve) => h1Upstream.listen(0, '127.0.0.1', resolve))
    ports.h2 = (h2Upstream.address() as { port: number }).port
    ports.h1 = (h1Upstream.address() as { port: number }).port
    dns = await startDnsServer({ [H2_HOST]: { a: ['127.0.0.1'] }, [H1_HOST]: { a: ['127.0.0.1'] } })
    const connector = (name: string, host: string, port: number, http: string, ca: string): string => `  ${name}:
    upstream: https://${host}:${port}
    upstream_http: ${http}
    ca_file: ${ca}
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: upload, methods: [POST], path: /upload, severity: write }
`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
${connector('viah2', H2_HOST, ports.h2, 'h2', 'h2-ca.pem')}${connector('viah1', H1_HOST, ports.h1, 'h1', 'h1-ca.pem')}`, { files: { 'h2-ca.pem': h2Pki.caPem, 'h1-ca.pem': h1Pki.caPem } })
    await kv.setSecret('token', 'tr_test_secret_0123456789abcdef')
    key = (await kv.mintKey(['viah2:write', 'viah1:write'])).key
  })
  after(async () => {
    await kv.close()
    await new Promise((resolve) => h2Upstream.close(resolve))
    h1Upstream.closeAllConnections()
    await new Promise((resolve) => h1Upstream.close(resolve))
    await dns.close()
  })

  const session = (host: string, port: number): Promise<ClientHttp2Session> => {
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    return h2Session({ proxyPort: Number(new URL(kv.forwardUrl).port), authority: `${host}:${port}`, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem })
  }

  /** A POST whose body is followed by `trailers` (none: the body ends the stream). */
  function post(s: ClientHttp2Session, headers: Record<string, string>, body: string, trailers: Record<string, string> | undefined): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const stream = s.request({ ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream', ...headers }, { waitForTrailers: trailers !== undefined })
      const timer = setTimeout(() => { stream.close(); reject(new Error('no answer in time')) }, 10_000)
      if (trailers !== undefined) stream.on('wantTrailers', () => stream.sendTrailers(trailers))
      let status = 0
      let head: IncomingHttpHeaders = {}
      const chunks: Buffer[] = []
      stream.on('response', (h) => { head = h; status = Number(h[':status']) })
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('error', () => {})
      stream.on('close', () => { clearTimeout(timer); resolve({ status, body: Buffer.concat(chunks).toString('utf8'), headers: head }) })
      // The body on its own, the end (and the trailers) a moment later: what keyvalet has forwarded by then is the upstream's.
      stream.write(body)
      setTimeout(() => stream.end(), 200)
    })
  }

  it('a body refused in the read it arrived in (a task key in its second chunk) to an HTTP/2 upstream on a kept connection: refused, and keyvalet keeps serving', async () => {
    const s = await session(H2_HOST, ports.h2)
    try {
      assert.equal((await post(s, {}, 'warm', undefined)).status, 200, 'the upstream connection is open and kept')
      const audited = (await kv.audit()).length
      const before = h2Seen.length
      const answer = await new Promise<number>((resolve, reject) => {
        const stream = s.request({ ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' })
        const timer = setTimeout(() => { stream.close(); reject(new Error('no answer in time')) }, 10_000)
        let status = 0
        stream.on('response', (h) => { status = Number(h[':status']) })
        stream.on('data', () => {})
        stream.on('error', () => {})
        stream.on('close', () => { clearTimeout(timer); resolve(status) })
        // Two DATA frames in one write: keyvalet reads them together.
        stream.cork()
        stream.write('first chunk, harmless;')
        stream.end(`second chunk: ${key}`)
        stream.uncork()
      })
      assert.equal(answer, 400)
      const records = await eventually(async () => {
        const r = (await kv.audit()).slice(audited)
        return r.length >= 1 ? r : undefined
      }, 'the refusal record')
      assert.deepEqual(records.map((r) => r.error), ['task_key_misplaced'])
      assert.ok(h2Seen.slice(before).every((r) => !r.complete))
      // keyvalet is not stuck: the next request on the same upstream connection is answered.
      const started = Date.now()
      assert.equal((await post(s, {}, 'after', undefined)).status, 200)
      assert.ok(Date.now() - started < 5000)
    } finally {
      s.close()
    }
  })

  /**
   * A sandbox that leaves mid-body: `start` sends a request's head and the first part of its body
   * to the HTTP/2 upstream, `leave` is called once the upstream has that part. Returns the records
   * written for it, and what the upstream saw of it a moment later.
   */
  async function leftMidBody(start: () => void, leave: () => void): Promise<{ records: Awaited<ReturnType<TestKeyvalet['audit']>>; seen: Seen[] }> {
    const audited = (await kv.audit()).length
    const before = h2Seen.length
    start()
    await eventually(async () => (h2Seen.length > before && (h2Seen.at(-1)?.bytes ?? 0) > 0 ? true : undefined), 'the upstream to have the first part')
    leave()
    const records = await eventually(async () => {
      const r = (await kv.audit()).slice(audited)
      return r.length >= 1 ? r : undefined
    }, 'the record of the request')
    await new Promise((resolve) => setTimeout(resolve, 200))
    return { records, seen: h2Seen.slice(before) }
  }

  // Raw frames: Node's own client, asked to close a stream, sends END_STREAM before its RST_STREAM.
  for (const declared of [true, false]) {
    it(`a client that resets its stream mid-body (RST_STREAM, no END_STREAM), to an HTTP/2 upstream, ${declared ? 'with' : 'without'} content-length: the upstream never has the request whole, audited once client_closed`, async () => {
      assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
      const authority = `${H2_HOST}:${ports.h2}`
      const raw = await F.RawH2.open({ proxyPort: Number(new URL(kv.forwardUrl).port), authority, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem })
      try {
        const fields: [string, string][] = [['content-type', 'application/octet-stream'], ...(declared ? [['content-length', '100000'] as [string, string]] : [])]
        const { records, seen } = await leftMidBody(
          () => raw.write(Buffer.concat([F.headers(1, F.request(authority, '/upload', fields, 'POST'), { endHeaders: true }), F.data(1, Buffer.from('the first part of the body;'))])),
          () => raw.write(F.rstStream(1, F.ERROR.CANCEL)),
        )
        assert.ok(seen.every((r) => !r.complete), JSON.stringify(seen))
        assert.deepEqual(records.map((r) => r.error), ['client_closed'])
      } finally {
        raw.close()
      }
    })
  }

  it('an HTTP/1.1 sandbox that leaves mid-body (its connection closed), to an HTTP/2 upstream: the upstream never has the request whole, audited once client_closed', async () => {
    const url = new URL(kv.url)
    const socket = connect(Number(url.port), url.hostname)
    socket.on('error', () => {})
    const { records, seen } = await leftMidBody(
      () => socket.write(`POST /viah2/upload HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${key}\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nthe first part of the body;`),
      () => socket.destroy(),
    )
    assert.ok(seen.every((r) => !r.complete), JSON.stringify(seen))
    assert.deepEqual(records.map((r) => r.error), ['client_closed'])
  })

  const cases = [
    { upstream: 'HTTP/2', host: H2_HOST, port: () => ports.h2, seen: h2Seen },
    { upstream: 'HTTP/1.1', host: H1_HOST, port: () => ports.h1, seen: h1Seen },
  ]
  for (const c of cases) {
    for (const declared of [true, false]) {
      it(`to an ${c.upstream} upstream, ${declared ? 'with' : 'without'} content-length: refused 400 request_unsupported, the upstream never has the request whole, audited once`, async () => {
        const s = await session(c.host, c.port())
        try {
          const body = 'the-whole-body'
          const length: Record<string, string> = declared ? { 'content-length': String(body.length) } : {}
          // First without trailers: it goes through whole, and leaves an upstream connection open for the next.
          const fine = await post(s, length, body, undefined)
          assert.equal(fine.status, 200)
          assert.equal(fine.body, 'received')
          const last = c.seen.at(-1)
          assert.deepEqual([last?.complete, last?.bytes, last?.authorization], [true, body.length, 'Bearer tr_test_secret_0123456789abcdef'])
          const audited = (await kv.audit()).length
          const before = c.seen.length
          const answer = await post(s, length, body, { 'x-checksum': 'abc123' })
          assert.equal(answer.status, 400)
          assert.equal(JSON.parse(answer.body).error.code, 'request_unsupported')
          assert.match(JSON.parse(answer.body).error.message, /trailers/)
          const records = await eventually(async () => {
            const r = (await kv.audit()).slice(audited)
            return r.length >= 1 ? r : undefined
          }, 'the refusal record')
          assert.equal(records.length, 1, JSON.stringify(records))
          assert.deepEqual([records[0]?.error, records[0]?.status, records[0]?.detail?.why, records[0]?.detail?.trailers], ['request_unsupported', 400, 'request_trailers', ['x-checksum']])
          // The upstream may have seen the head begin, never a complete request.
          await new Promise((resolve) => setTimeout(resolve, 200))
          assert.ok(c.seen.slice(before).every((r) => !r.complete), JSON.stringify(c.seen.slice(before)))
        } finally {
          s.close()
        }
      })
    }
  }
})

/**
 * An upload that stalls mid-body, to an HTTP/2 upstream, cut by limits.idle_timeout_ms: the cut
 * comes from keyvalet (the request's signal), not from the sandbox's body failing. The upstream
 * must never have the request whole: a stream ended with RST_STREAM NO_ERROR reads to an HTTP/2
 * server as a body that ended, so the stream must be reset with an error.
 */
describe('a stalled upload to an HTTP/2 upstream, cut for idleness', () => {
  const pki = upstreamCertificate(H2_HOST)
  const seen: Seen[] = []
  let upstream: Http2SecureServer
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = createSecureServer(pki.tls, recorder(seen))
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const port = (upstream.address() as { port: number }).port
    dns = await startDnsServer({ [H2_HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
limits: { idle_timeout_ms: 1500, upstream_timeout_ms: 5000, request_timeout_ms: 1000 }
connectors:
  viah2:
    upstream: https://${H2_HOST}:${port}
    upstream_http: h2
    ca_file: h2-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: upload, methods: [POST], path: /upload, severity: write }
`, { files: { 'h2-ca.pem': pki.caPem } })
    await kv.setSecret('token', 'tr_test_secret_0123456789abcdef')
    key = (await kv.mintKey(['viah2:write'])).key
  })
  after(async () => {
    await kv.close()
    await new Promise((resolve) => upstream.close(resolve))
    await dns.close()
  })

  for (const framing of ['content-length', 'chunked'] as const) {
    it(`${framing}: the upstream never has the request whole; the sandbox's connection is cut; its closing record says idle_timeout`, async () => {
      const audited = (await kv.audit()).length
      const before = seen.length
      const url = new URL(kv.url)
      const socket = connect(Number(url.port), url.hostname)
      socket.on('error', () => {})
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      const part = 'the first part of the body;'
      const framed = framing === 'chunked' ? `transfer-encoding: chunked\r\n\r\n${part.length.toString(16)}\r\n${part}\r\n` : `content-length: 100000\r\n\r\n${part}`
      socket.write(`POST /viah2/upload HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${key}\r\ncontent-type: application/octet-stream\r\n${framed}`)
      await eventually(async () => (seen.length > before && (seen.at(-1)?.bytes ?? 0) > 0 ? true : undefined), 'the upstream to have the first part')
      await closed
      const records = await eventually(async () => {
        const r = (await kv.audit()).slice(audited)
        return r.some((x) => x.phase === 'close') ? r : undefined
      }, 'the closing record of the request')
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.ok(seen.slice(before).every((r) => !r.complete), JSON.stringify(seen.slice(before)))
      // A request that lasts is recorded when its credential is attached, then when it ends.
      assert.deepEqual(records.map((r) => [r.phase, r.error]), [['open', null], ['close', 'idle_timeout']])
    })
  }
})
