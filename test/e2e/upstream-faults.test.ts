import assert from 'node:assert/strict'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startRawUpstream, type RawUpstream } from '../helpers/raw-upstream.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'fault-secret-0123456789abcdefghijkl'

/** Each path is one way an upstream misbehaves, written byte by byte. */
function misbehave(target: string, socket: Socket): void {
  const head = (length: number): string => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${length}\r\n\r\n`
  switch (target) {
    case '/reset-mid-body':
      socket.write(head(100_000) + 'a'.repeat(1000))
      setTimeout(() => socket.resetAndDestroy(), 50)
      return
    case '/reset-before-head':
      socket.resetAndDestroy()
      return
    case '/garbage-status':
      socket.end('HTTQ/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      return
    case '/huge-headers':
      socket.end(`HTTP/1.1 200 OK\r\nx-filler: ${'a'.repeat(70 * 1024)}\r\ncontent-length: 2\r\n\r\nok`)
      return
    case '/stall-head':
    case '/stall-head-left':
    case '/stalled-upload':
      return // reads the request, never answers
    case '/stall-body':
      socket.write(head(100_000) + 'b'.repeat(1000))
      return // and nothing more
    default:
      socket.end(head(2) + 'ok')
  }
}

interface Got {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly bytes: number
  /** True when the response arrived whole; false when the connection was cut. */
  readonly complete: boolean
}

/** A plain node:http client, to see exactly what the sandbox gets (status, bytes, a cut connection). */
function get(kv: TestKeyvalet, key: string, path: string, opts: { abortAfterMs?: number } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${kv.url}/api${path}`, { headers: { authorization: `Bearer ${key}` } }, (res) => {
      let bytes = 0
      res.on('data', (c: Buffer) => { bytes += c.length })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, complete: res.complete }))
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, complete: false }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, complete: false }))
    })
    req.on('error', (err) => (opts.abortAfterMs === undefined ? reject(err) : resolve({ status: 0, headers: {}, bytes: 0, complete: false })))
    req.end()
    if (opts.abortAfterMs !== undefined) setTimeout(() => req.destroy(), opts.abortAfterMs)
  })
}

/** The audit record of the request to `path`, once it is written (bounded wait). */
async function recordFor(kv: TestKeyvalet, path: string): Promise<AuditRecord> {
  for (let i = 0; i < 300; i++) {
    const found = (await kv.audit()).find((r) => r.path === path)
    if (found !== undefined) return found
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no audit record for ${path}`)
}

const config = (upstream: RawUpstream, limits: string, more = ''): string => `version: 1
listen: { gateway: "127.0.0.1:0" }
limits: ${limits}
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-key, inject: bearer }
    rules: [{ id: all, methods: [GET, PUT], path: /**, severity: read }]
${more}`

describe('upstream faults: each its own stable code, for the sandbox and in the audit record', () => {
  let upstream: RawUpstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = await startRawUpstream(misbehave)
    kv = await startKeyvalet(config(upstream, '{ upstream_timeout_ms: 400, idle_timeout_ms: 20000 }'))
    await kv.setSecret('api-key', SECRET)
    key = (await kv.mintKey(['api:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  it('a reset mid-body cuts the response and is audited upstream_reset (not internal_error)', async () => {
    const got = await get(kv, key, '/reset-mid-body')
    assert.equal(got.status, 200)
    assert.equal(got.complete, false, 'the sandbox sees the response cut, not a short body that looks whole')
    assert.ok(got.bytes >= 1000 && got.bytes < 100_000)
    const r = await recordFor(kv, '/reset-mid-body')
    assert.deepEqual([r.decision, r.reason, r.error, r.rule, r.status, r.upstream_status], ['error', 'upstream_reset', 'upstream_reset', 'all', 200, 200])
    assert.ok(r.bytes_out >= 1000)
  })

  it('a reset before the response head is answered 502 upstream_reset', async () => {
    const got = await get(kv, key, '/reset-before-head')
    assert.equal(got.status, 502)
    assert.equal(got.headers['x-keyvalet-error'], 'upstream_reset')
    const r = await recordFor(kv, '/reset-before-head')
    assert.deepEqual([r.decision, r.reason, r.error, r.status, r.upstream_status], ['error', 'upstream_reset', 'upstream_reset', 502, null])
  })

  it('a garbage status line is answered 502 upstream_response_invalid (not upstream_unreachable)', async () => {
    const got = await get(kv, key, '/garbage-status')
    assert.equal(got.status, 502)
    assert.equal(got.headers['x-keyvalet-error'], 'upstream_response_invalid')
    const r = await recordFor(kv, '/garbage-status')
    assert.deepEqual([r.decision, r.reason, r.error, r.status], ['error', 'upstream_response_invalid', 'upstream_response_invalid', 502])
    assert.equal(r.detail?.['upstream_error'], 'HTTPParserError')
    assert.match(String(r.detail?.['why']), /Expected HTTP\//)
  })

  it('response headers over 64 KiB are answered 502 upstream_headers_too_large (not upstream_unreachable)', async () => {
    const got = await get(kv, key, '/huge-headers')
    assert.equal(got.status, 502)
    assert.equal(got.headers['x-keyvalet-error'], 'upstream_headers_too_large')
    assert.equal(got.headers['x-filler'], undefined)
    const r = await recordFor(kv, '/huge-headers')
    assert.deepEqual([r.decision, r.reason, r.error, r.status], ['error', 'upstream_headers_too_large', 'upstream_headers_too_large', 502])
  })

  it('an upstream that never answers is 504 upstream_timeout when that timeout is the shorter', async () => {
    const got = await get(kv, key, '/stall-head')
    assert.equal(got.status, 504)
    assert.equal(got.headers['x-keyvalet-error'], 'upstream_timeout')
    const r = await recordFor(kv, '/stall-head')
    assert.deepEqual([r.decision, r.reason, r.error, r.status], ['error', 'upstream_timeout', 'upstream_timeout', 504])
  })

  it('a sandbox that leaves while the upstream is silent is audited client_closed, its own code', async () => {
    const got = await get(kv, key, '/stall-head-left', { abortAfterMs: 100 })
    assert.equal(got.status, 0, 'the sandbox left before any answer')
    assert.ok(upstream.requests.includes('GET /stall-head-left HTTP/1.1'))
    const r = await recordFor(kv, '/stall-head-left')
    assert.deepEqual([r.decision, r.reason, r.error, r.status, r.upstream_status], ['error', 'client_closed', 'client_closed', 499, null])
  })
})

describe("keyvalet's own idle timeout: its own code, and a 504 instead of a bare reset", () => {
  let upstream: RawUpstream
  let kv: TestKeyvalet
  let key: string

  let tokens: Upstream

  before(async () => {
    upstream = await startRawUpstream(misbehave)
    // A token endpoint slower than the idle timeout: the connection goes idle while the credential is fetched.
    tokens = await startUpstream({
      handler: (_req, res) => setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ access_token: 'at_slow_token_0123456789', token_type: 'Bearer', expires_in: 600 }))
      }, 900),
    })
    // An idle timeout shorter than the upstream timeout: `keyvalet check` warns, but it must still answer.
    kv = await startKeyvalet(config(upstream, '{ upstream_timeout_ms: 20000, idle_timeout_ms: 400 }', `  slow-credential:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${tokens.url}/token", client_id: kv, client_secret: token-secret }
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
`))
    await kv.setSecret('api-key', SECRET)
    await kv.setSecret('token-secret', 'client-secret-value')
    key = (await kv.mintKey(['api:read', 'slow-credential:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await tokens.close()
  })

  it('a connection that goes idle before the request is sent: answered 504 idle_timeout, and the request never sent', async () => {
    const { port } = new URL(kv.url)
    const got = await new Promise<Got>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/slow-credential/never-sent', headers: { authorization: `Bearer ${key}` } }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: 0, complete: res.complete }))
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(got.status, 504)
    assert.equal(got.headers['x-keyvalet-error'], 'idle_timeout')
    assert.equal(tokens.received.length, 1, 'the credential was fetched')
    await new Promise((r) => setTimeout(r, 100))
    assert.ok(!upstream.requests.some((line) => line.includes('/never-sent')), 'the upstream never saw the request')
    const r = await recordFor(kv, '/never-sent')
    assert.deepEqual([r.decision, r.reason, r.error, r.status, r.upstream_status], ['error', 'idle_timeout', 'idle_timeout', 504, null])
  })

  it('an upstream silent past the idle timeout is answered 504 idle_timeout, and the connection closed', async () => {
    const started = Date.now()
    const got = await get(kv, key, '/stall-head')
    assert.ok(Date.now() - started < 10_000)
    assert.equal(got.status, 504)
    assert.equal(got.headers['x-keyvalet-error'], 'idle_timeout')
    assert.equal(got.headers.connection, 'close')
    const r = await recordFor(kv, '/stall-head')
    assert.deepEqual([r.decision, r.reason, r.error, r.status, r.upstream_status], ['error', 'idle_timeout', 'idle_timeout', 504, null])
    assert.deepEqual(r.detail, { idle_timeout_ms: 400 })
  })

  it('a body that stops moving is cut at the idle timeout and audited idle_timeout (not client_closed)', async () => {
    const got = await get(kv, key, '/stall-body')
    assert.equal(got.status, 200)
    assert.equal(got.complete, false)
    assert.equal(got.bytes, 1000)
    const r = await recordFor(kv, '/stall-body')
    assert.deepEqual([r.decision, r.reason, r.error, r.status, r.upstream_status, r.bytes_out], ['error', 'idle_timeout', 'idle_timeout', 200, 200, 1000])
  })

  it('an upload that stops moving is cut at the idle timeout and audited idle_timeout', async () => {
    const { port } = new URL(kv.url)
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`PUT /api/stalled-upload HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nContent-Length: 1000\r\n\r\n${'c'.repeat(10)}`)
      })
      let data = ''
      socket.setTimeout(10_000, () => socket.destroy())
      socket.on('data', (c: Buffer) => { data += c.toString() })
      socket.on('close', () => resolve(data))
      socket.on('error', () => {})
    })
    assert.equal(answer, '', 'nothing can be answered to a request that is still arriving: the connection is closed')
    const r = await recordFor(kv, '/stalled-upload')
    assert.deepEqual([r.decision, r.reason, r.error, r.method], ['error', 'idle_timeout', 'idle_timeout', 'PUT'])
  })
})
