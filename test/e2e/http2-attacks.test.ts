import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { h2Request, h2Session } from '../helpers/h2-client.ts'
import * as F from '../helpers/h2-frames.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { echo, startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'api.example.test'
const BIG = 64 * 1024 * 1024

/**
 * HTTP/2's own attacks on the intercepting listener, each written frame by frame: refused (the
 * stream reset, or the connection closed and audited once), nothing of it sent upstream, another
 * client served meanwhile, and what it cost bounded. Limits are the defaults.
 */
describe('HTTP/2 attacks on intercepted tunnels', () => {
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
        if (req.url !== '/big') return echo(req, res, received)
        // A large answer written with backpressure, for a client that never opens its window.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG })
        const chunk = Buffer.alloc(64 * 1024, 0x61)
        let sent = 0
        const pump = (): void => {
          while (sent < BIG) {
            sent += chunk.length
            if (!res.write(chunk)) return void res.once('drain', pump)
          }
          res.end()
        }
        res.on('close', () => { sent = BIG })
        pump()
      },
    })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
limits: { idle_timeout_ms: 4000 }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: token, inject: bearer }
    rules:
      - { id: any, methods: [GET, POST], path: /**, severity: write }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('token', 'attack_test_secret_0123456789')
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

  /** Waits (bounded) until no audit record was added for 300 ms; the records added since `from`. */
  async function settledAudit(from: number): Promise<AuditRecord[]> {
    let last = -1
    for (let i = 0; i < 50; i++) {
      const records = await kv.audit()
      if (records.length === last) return records.slice(from)
      last = records.length
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    throw new Error('the audit log did not settle')
  }

  /** Another client, on a connection of its own, is served (the attack's connection may still be open). */
  async function bystanderServed(): Promise<void> {
    const bystander = await h2Session(opts)
    try {
      const answer = await h2Request(bystander, { ':method': 'GET', ':path': '/still-served' })
      assert.equal(answer.status, 200)
      assert.equal(upstream.received.at(-1)?.url, '/still-served')
    } finally {
      bystander.close()
    }
  }

  const malformed: [string, (id: number) => Buffer, number][] = [
    ['an upper-case header name', (id) => F.headers(id, F.request(authority, '/m', [['X-Upper', '1']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['transfer-encoding', (id) => F.headers(id, F.request(authority, '/m', [['transfer-encoding', 'chunked']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['connection', (id) => F.headers(id, F.request(authority, '/m', [['connection', 'keep-alive']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['a pseudo-header after a regular one', (id) => F.headers(id, F.headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', authority], ['x-a', '1'], [':path', '/m']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['an unknown pseudo-header', (id) => F.headers(id, F.request(authority, '/m', [[':injected', '1']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['a repeated :path', (id) => F.headers(id, F.headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', authority], [':path', '/m'], [':path', '/other']]), { endStream: true }), F.ERROR.PROTOCOL_ERROR],
    ['content-length more than the DATA', (id) => Buffer.concat([F.headers(id, F.request(authority, '/m', [['content-length', '10']], 'POST')), F.data(id, Buffer.from('hello'), true)]), F.ERROR.PROTOCOL_ERROR],
  ]
  for (const [what, make, code] of malformed) {
    it(`a request with ${what} is reset before it reaches keyvalet; the next malformed one closes the connection, audited once`, async () => {
      const audited = (await kv.audit()).length
      const before = upstream.received.length
      const raw = await F.RawH2.open(opts)
      try {
        raw.write(make(1))
        await raw.until(() => raw.resets().has(1))
        assert.equal(raw.resets().get(1), code)
        raw.write(make(3))
        await raw.until(() => raw.closed)
        // Node closes it with GOAWAY INTERNAL_ERROR once nghttp2 reports one invalid frame too many.
        assert.notEqual(raw.goaway, F.ERROR.NO_ERROR)
        assert.equal(upstream.received.length, before, 'nothing reached the upstream whole')
        const violations = (await settledAudit(audited)).filter((r) => r.error === 'h2_protocol_violation')
        assert.equal(violations.length, 1, JSON.stringify(violations))
        assert.equal(violations[0]?.agent, 'test-agent', 'the record names the task')
        await bystanderServed()
      } finally {
        raw.close()
      }
    })
  }

  // nghttp2 resets these before Node makes a stream of them; keyvalet finds them from the session (src/proxy/h2-refused.ts).
  const refusedAlone: [string, () => Buffer][] = [
    ['an upper-case header name', () => F.headers(1, F.request(authority, '/m', [['X-Upper', '1']]), { endStream: true })],
    ['CR/LF in :path', () => F.headers(1, F.headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', authority], [':path', '/m\r\nx-injected: 1']]), { endStream: true })],
    ['NUL in :authority', () => F.headers(1, F.headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', `${authority}\0`], [':path', '/m']]), { endStream: true })],
  ]
  for (const [what, make] of refusedAlone) {
    it(`the first malformed request on a connection (${what}) is reset PROTOCOL_ERROR and audited once, h2_stream_refused, when the client leaves`, async () => {
      const audited = (await kv.audit()).length
      const before = upstream.received.length
      const raw = await F.RawH2.open(opts)
      raw.write(make())
      await raw.until(() => raw.resets().has(1))
      assert.equal(raw.resets().get(1), F.ERROR.PROTOCOL_ERROR)
      raw.close()
      const records = await settledAudit(audited)
      assert.equal(records.length, 1, JSON.stringify(records))
      assert.deepEqual([records[0]?.error, records[0]?.decision, records[0]?.status, records[0]?.agent, records[0]?.detail?.streams, records[0]?.detail?.last_stream],
        ['h2_stream_refused', 'deny', 400, 'test-agent', 1, 1])
      assert.equal(upstream.received.length, before, 'nothing reached the upstream')
      await bystanderServed()
    })
  }

  it('a malformed request and then a valid one on the same connection: the first is audited once (h2_stream_refused), the second served and audited', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, F.request(authority, '/m', [['X-Upper', '1']]), { endStream: true }))
      await raw.until(() => raw.resets().has(1))
      raw.write(F.headers(3, F.request(authority, '/after-malformed'), { endStream: true }))
      await raw.until(() => raw.frames.some((f) => f.streamId === 3 && (f.flags & F.FLAG.END_STREAM) !== 0))
      assert.equal(raw.closed, false, 'the connection is kept')
      const records = await settledAudit(audited)
      assert.deepEqual(records.map((r) => [r.error ?? null, r.path]), [['h2_stream_refused', null], [null, '/after-malformed']])
      assert.equal(records[0]?.detail?.last_stream, 1)
      assert.deepEqual(upstream.received.slice(before).map((r) => r.url), ['/after-malformed'])
    } finally {
      raw.close()
    }
    assert.equal((await settledAudit(audited)).length, 2, 'leaving adds no record for a stream already accounted for')
  })

  it('content-length less than the DATA closes the connection at once (a connection error), audited once', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    raw.write(Buffer.concat([F.headers(1, F.request(authority, '/m', [['content-length', '2']], 'POST')), F.data(1, Buffer.from('hello'), true)]))
    await raw.until(() => raw.closed)
    assert.notEqual(raw.goaway, F.ERROR.NO_ERROR)
    assert.equal(upstream.received.length, before)
    assert.equal((await settledAudit(audited)).filter((r) => r.error === 'h2_protocol_violation').length, 1)
    await bystanderServed()
  })

  // nghttp2 drops such a field without resetting the stream (Node tells JavaScript nothing); keyvalet's header inspector finds it (src/proxy/h2/).
  const invalidFields: [string, readonly [string, string], string, string | undefined][] = [
    ['CR in a value', ['x-a', 'b\rc'], 'value_control_character', 'x-a'],
    ['LF in a value', ['x-a', 'b\nx-injected: 1'], 'value_control_character', 'x-a'],
    ['NUL in a value', ['x-a', 'b\0c'], 'value_control_character', 'x-a'],
    ['CR/LF in a name', ['x-a\r\nx-injected', '1'], 'name_invalid', undefined],
    ['NUL in a name', ['x-a\0', '1'], 'name_invalid', undefined],
    ['whitespace at the end of a value', ['x-a', 'b '], 'value_whitespace', 'x-a'],
  ]
  for (const [what, field, why, header] of invalidFields) {
    it(`${what}: that stream is refused 400 header_invalid and audited once, nothing of it goes upstream; the next stream on the connection is served`, async () => {
      const audited = (await kv.audit()).length
      const before = upstream.received.length
      const raw = await F.RawH2.open(opts)
      try {
        raw.write(Buffer.concat([
          F.headers(1, F.request(authority, '/invalid-field', [['x-before', '1'], field]), { endStream: true }),
          F.headers(3, F.request(authority, '/clean-after'), { endStream: true }),
        ]))
        await raw.until(() => raw.answer(1).ended && raw.answer(3).ended)
        const refused = raw.answer(1)
        assert.equal(refused.headers[':status'], '400')
        assert.equal((JSON.parse(refused.body) as { error?: { code?: string } }).error?.code, 'header_invalid', refused.body)
        assert.equal(raw.answer(3).headers[':status'], '200')
        assert.deepEqual(upstream.received.slice(before).map((r) => r.url), ['/clean-after'], 'only the clean stream reached the upstream')
        assert.equal(upstream.received.at(-1)?.headers['x-injected'], undefined)
        const records = await settledAudit(audited)
        // Refused before the pipeline reads the request, as the other refusals of a stream's head are (its path is not recorded).
        assert.deepEqual(records.map((r) => [r.error ?? null, r.path, r.status]).sort(), [['header_invalid', null, 400], [null, '/clean-after', 200]].sort())
        const record = records.find((r) => r.error === 'header_invalid')
        assert.deepEqual([record?.decision, record?.method, record?.detail?.why, record?.detail?.header], ['deny', 'GET', why, header])
        // Named by the session whose task key opened the tunnel, as the stream served beside it is.
        const served = records.find((r) => r.error === undefined || r.error === null)
        assert.ok(served?.session !== null && served?.task !== null, 'the served stream names its session')
        assert.deepEqual([record?.session, record?.task, record?.agent], [served?.session, served?.task, served?.agent])
        assert.ok(!JSON.stringify(records).includes('x-injected'), "the field's bytes are not in the record")
      } finally {
        raw.close()
      }
    })
  }

  it('a field made invalid through the HPACK dynamic table (indexed once, referenced by a later stream) is refused on each stream that carries it', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    try {
      raw.write(F.headers(1, Buffer.concat([F.request(authority, '/indexed-first'), F.indexedLiteral('x-a', 'b\r\nx-injected: 1')]), { endStream: true }))
      await raw.until(() => raw.answer(1).ended)
      raw.write(F.headers(3, Buffer.concat([F.request(authority, '/indexed-again'), F.indexed(62)]), { endStream: true }))
      raw.write(F.headers(5, F.request(authority, '/clean-after'), { endStream: true }))
      await raw.until(() => raw.answer(3).ended && raw.answer(5).ended)
      assert.deepEqual([1, 3, 5].map((id) => raw.answer(id).headers[':status']), ['400', '400', '200'])
      assert.deepEqual(upstream.received.slice(before).map((r) => r.url), ['/clean-after'])
      const records = await settledAudit(audited)
      assert.deepEqual(records.map((r) => [r.error ?? null, r.path]).sort(), [['header_invalid', null], ['header_invalid', null], [null, '/clean-after']].sort())
    } finally {
      raw.close()
    }
  })

  it('a header block keyvalet cannot decode (an HPACK index past the tables) closes the connection, audited once', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    raw.write(F.headers(1, Buffer.concat([F.request(authority, '/m'), F.indexed(70)]), { endStream: true }))
    await raw.until(() => raw.closed)
    assert.notEqual(raw.goaway, F.ERROR.NO_ERROR)
    assert.equal(upstream.received.length, before)
    const records = await settledAudit(audited)
    assert.equal(records.length, 1, JSON.stringify(records))
    assert.equal(records[0]?.error, 'h2_protocol_violation')
    await bystanderServed()
  })

  it('rapid reset: streams opened and cancelled by the thousand close the connection after h2_max_resets_per_minute, audited once; work and memory stay bounded', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const rss = process.memoryUsage().rss
    const cpu = process.cpuUsage()
    const raw = await F.RawH2.open(opts)
    for (let i = 0; i < 5000; i++) {
      const id = 1 + 2 * i
      if (!raw.write(Buffer.concat([F.headers(id, F.request(authority, '/reset'), { endStream: true }), F.rstStream(id, F.ERROR.CANCEL)]))) break
    }
    await raw.until(() => raw.closed)
    const records = await settledAudit(audited)
    const violations = records.filter((r) => r.error === 'h2_protocol_violation')
    assert.equal(violations.length, 1)
    assert.equal(violations[0]?.detail?.why, 'rapid_reset', JSON.stringify(violations[0]?.detail))
    // A stream reset in the same read as its HEADERS is never begun; one whose RST came in a later
    // read (the pair split across TLS records) costs a record, perhaps an upstream request. Those
    // count against the limit too: at most the limit, and the streams in flight when it was reached.
    assert.ok(records.length <= 200 + 100 + 1, `${records.length} records`)
    assert.ok(upstream.received.length - before <= 200 + 100, `${upstream.received.length - before} reached the upstream`)
    const used = process.cpuUsage(cpu)
    assert.ok((used.user + used.system) / 1e6 < 20, `CPU ${(used.user + used.system) / 1e6} s`)
    assert.ok(process.memoryUsage().rss - rss < 200 * 1024 * 1024, 'RSS stayed bounded')
    await bystanderServed()
  })

  it('CONTINUATION flood: a header block that never ends closes the connection, audited once', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    raw.write(F.headers(1, F.request(authority, '/m'), { endStream: true, endHeaders: false }))
    let sent = 0
    while (sent < 100_000 && raw.write(F.continuation(1, F.headerBlock([[`x-c${sent}`, 'v']])))) sent++
    await raw.until(() => raw.closed)
    assert.ok(sent < 100_000 || raw.closed)
    assert.equal(upstream.received.length, before)
    const violations = (await settledAudit(audited)).filter((r) => r.error === 'h2_protocol_violation')
    assert.equal(violations.length, 1)
    assert.equal(violations[0]?.detail?.why, 'session_error')
    await bystanderServed()
  })

  it('HPACK bomb: a small block that decodes to more than h2_max_header_list_bytes is reset ENHANCE_YOUR_CALM, never decoded whole', async () => {
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    try {
      // One 4 KB field in the dynamic table, then referenced 1000 times by a one-byte index: 4 MB decoded from 5 KB.
      const block = Buffer.concat([F.request(authority, '/m'), F.indexedLiteral('x-bomb', 'a'.repeat(4000)), ...Array.from({ length: 1000 }, () => F.indexed(62))])
      raw.write(F.headers(1, block, { endStream: true }))
      await raw.until(() => raw.resets().has(1))
      assert.equal(raw.resets().get(1), F.ERROR.ENHANCE_YOUR_CALM)
      assert.equal(upstream.received.length, before)
      await bystanderServed()
    } finally {
      raw.close()
    }
  })

  it('too many concurrent streams: those over h2_max_concurrent_streams are refused REFUSED_STREAM, and past h2_max_rejected_streams the connection is closed, audited once', async () => {
    const audited = (await kv.audit()).length
    const before = upstream.received.length
    const raw = await F.RawH2.open(opts)
    // Streams left open (a body announced, never sent) so that they stay concurrent.
    for (let i = 0; i < 150; i++) raw.write(F.headers(1 + 2 * i, F.request(authority, '/open', [], 'POST')))
    await raw.until(() => raw.closed)
    const refused = [...raw.resets()].filter(([id, code]) => id > 200 && code === F.ERROR.REFUSED_STREAM)
    assert.ok(refused.length >= 1, 'streams over the limit were refused')
    assert.ok([...raw.resets().keys()].every((id) => id > 200), 'none within the limit was refused')
    const records = await settledAudit(audited)
    assert.equal(records.filter((r) => r.error === 'h2_protocol_violation').length, 1)
    assert.ok(upstream.received.length - before <= 100)
    await bystanderServed()
  })

  it('flow control: a WINDOW_UPDATE past 2^31-1 closes the connection FLOW_CONTROL_ERROR, audited once', async () => {
    const audited = (await kv.audit()).length
    const raw = await F.RawH2.open(opts)
    raw.write(Buffer.concat([F.windowUpdate(0, 0x7fffffff), F.windowUpdate(0, 0x7fffffff)]))
    await raw.until(() => raw.closed)
    assert.equal(raw.goaway, F.ERROR.FLOW_CONTROL_ERROR)
    assert.equal((await settledAudit(audited)).filter((r) => r.error === 'h2_protocol_violation').length, 1)
    await bystanderServed()
  })

  it('flow control: a client that never opens its window gets no more than it allows, and keyvalet holds no more than a bounded part of the 64 MB answer', async () => {
    const rss = process.memoryUsage().rss
    const raw = await F.RawH2.open(opts, [[F.SETTING.INITIAL_WINDOW_SIZE, 0]])
    try {
      raw.write(F.headers(1, F.request(authority, '/big'), { endStream: true }))
      await raw.until(() => raw.frames.some((f) => f.type === F.FRAME.HEADERS && f.streamId === 1))
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const received = raw.frames.filter((f) => f.type === F.FRAME.DATA).reduce((n, f) => n + f.payload.length, 0)
      assert.equal(received, 0, 'no DATA beyond a window of 0')
      assert.ok(process.memoryUsage().rss - rss < 48 * 1024 * 1024, `RSS grew ${(process.memoryUsage().rss - rss) / 1e6} MB`)
      await bystanderServed()
    } finally {
      raw.close()
    }
  })

  it('an HTTP/2 connection on which nothing moves is closed after limits.idle_timeout_ms', async () => {
    const raw = await F.RawH2.open(opts)
    try {
      await raw.until(() => raw.frames.some((f) => f.type === F.FRAME.SETTINGS))
      const opened = Date.now()
      await raw.until(() => raw.closed || raw.goaway !== undefined, 15_000)
      assert.ok(Date.now() - opened >= 3000, 'not before the idle timeout')
    } finally {
      raw.close()
    }
  })
})
