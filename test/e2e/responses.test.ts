import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { promisify } from 'node:util'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { auditPathFor } from '../../src/store/sqlite-store.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'sk-live-0123456789abcdefghijklmnopqrstuv'

describe('responses: nothing secret flows back, nothing is followed', () => {
  let upstream: Upstream
  let elsewhere: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    elsewhere = await startUpstream()
    upstream = await startUpstream({
      handler: (req, res) => {
        if (req.url === '/split') {
          // The secret split across two writes, so it arrives in two chunks.
          res.writeHead(200, { 'content-type': 'text/plain', 'x-echo': `token=${SECRET}` })
          res.write(`before ${SECRET.slice(0, 10)}`)
          setTimeout(() => res.end(`${SECRET.slice(10)} after`), 30)
        } else if (req.url === '/redirect') {
          res.writeHead(302, { location: `${elsewhere.url}/steal?token=${SECRET}` })
          res.end()
        } else if (req.url === '/gzip') {
          const body = gzipSync(`compressed ${SECRET} inside`)
          res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length })
          res.end(body)
        } else if (req.url === '/empty') {
          res.writeHead(204, { 'x-echo': SECRET })
          res.end()
        } else if (req.url === '/weird-coding') {
          res.writeHead(200, { 'content-encoding': 'x-custom' })
          res.end('????')
        } else {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 })
          res.end('ok')
        }
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-key, inject: bearer }
    rules:
      - { id: all, methods: [GET, POST], path: /**, severity: read }
`)
    await kv.setSecret('api-key', SECRET)
    key = (await kv.mintKey(['api:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await elsewhere.close()
  })

  const get = (path: string) => request(`${kv.url}/api${path}`, { headers: { authorization: `Bearer ${key}` } })

  it('redacts the secret echoed in a header and split across body chunks', async () => {
    const res = await get('/split')
    const text = await res.body.text()
    assert.equal(res.statusCode, 200)
    assert.equal(text, `before ${'*'.repeat(SECRET.length)} after`)
    assert.equal(res.headers['x-echo'], `token=${'*'.repeat(SECRET.length)}`)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.redactions, 2)
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
  })

  it('sends a response without a body only after its audit record is written', async () => {
    const before = (await kv.audit()).length
    const res = await get('/empty')
    await res.body.dump()
    assert.equal(res.statusCode, 204)
    assert.equal(res.headers['x-echo'], '*'.repeat(SECRET.length))
    const records = await kv.audit()
    assert.equal(records.length, before + 1)
    assert.equal(records.at(-1)?.upstream_status, 204)
  })

  it('decodes a compressed body before redacting it', async () => {
    const res = await get('/gzip')
    assert.equal(res.headers['content-encoding'], undefined)
    assert.equal(await res.body.text(), `compressed ${'*'.repeat(SECRET.length)} inside`)
    assert.equal(upstream.received.at(-1)?.headers['accept-encoding'], 'identity')
  })

  it('refuses a response in a coding it cannot inspect', async () => {
    const res = await get('/weird-coding')
    const text = await res.body.text()
    assert.equal(res.statusCode, 502)
    assert.equal(res.headers['x-keyvalet-error'], 'upstream_response_invalid')
    assert.ok(!text.includes('????'))
    assert.equal((await kv.audit()).at(-1)?.error, 'upstream_response_invalid')
  })

  it('does not follow a redirect, and its Location does not carry the secret', async () => {
    const before = elsewhere.received.length
    const res = await get('/redirect')
    await res.body.dump()
    assert.equal(res.statusCode, 302)
    assert.ok(!String(res.headers.location).includes(SECRET))
    assert.ok(String(res.headers.location).startsWith(`${elsewhere.url}/steal?token=***`))
    assert.equal(elsewhere.received.length, before, 'the other host received nothing')
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.upstream_status, 302)
    assert.equal(record?.redactions, 1)
  })

  it('refuses a request with both Content-Length and Transfer-Encoding (smuggling) before it reaches the upstream', async () => {
    const before = upstream.received.length
    const auditBefore = (await kv.audit()).length
    const { port } = new URL(kv.url)
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`POST /api/x HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: k\r\n\r\n`)
      })
      let data = ''
      socket.setTimeout(3000, () => socket.destroy(new Error('no answer')))
      socket.on('data', (c) => { data += c.toString() })
      socket.on('end', () => resolve(data))
      socket.on('close', () => resolve(data))
      socket.on('error', reject)
    })
    assert.match(answer, /^HTTP\/1\.1 400/)
    assert.equal(upstream.received.length, before)
    const records = await kv.audit()
    assert.equal(records.length, auditBefore + 1)
    assert.equal(records.at(-1)?.error, 'request_malformed')
  })

  it('works with curl as the sandbox client', async () => {
    const run = promisify(execFile)
    const { stdout: out } = await run('curl', ['--max-time', '10', '-s', '-i', '-H', `Authorization: Bearer ${key}`, `${kv.url}/api/split`], { encoding: 'utf8' })
    assert.match(out, /^HTTP\/1\.1 200/)
    assert.ok(!out.includes(SECRET))
    assert.ok(out.includes(`before ${'*'.repeat(SECRET.length)} after`))
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal((await kv.audit()).at(-1)?.decision, 'allow')
  })
})

describe('requests the gateway refuses before any stage', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
`)
    key = (await kv.mintKey(['api:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  async function raw(text: string): Promise<string> {
    const { port } = new URL(kv.url)
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(text))
      let data = ''
      socket.setTimeout(3000, () => socket.destroy())
      socket.on('data', (c) => { data += c.toString() })
      socket.on('close', () => resolve(data))
      socket.on('error', reject)
    })
  }

  const cases: [string, () => string, RegExp, string][] = [
    ['an absolute-form target (a forward-proxy request)', () => `GET http://evil.example/api/x HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`, /^HTTP\/1\.1 400 /, 'path_ambiguous'],
    ['CONNECT', () => `CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n`, /^HTTP\/1\.1 405 /, 'method_refused'],
    ['an upgrade to something other than WebSocket', () => `GET /api/socket HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`, /^HTTP\/1\.1 400 /, 'upgrade_refused'],
    ['a WebSocket upgrade no rule allows', () => `GET /api/socket HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, /^HTTP\/1\.1 403 /, 'policy_denied'],
    ['a header with a bare LF injection', () => `GET /api/x HTTP/1.1\r\nHost: k\r\nX-A: a\nInjected: 1\r\nAuthorization: Bearer ${key}\r\n\r\n`, /^HTTP\/1\.1 400 /, 'request_malformed'],
    ['two different Content-Length headers', () => `POST /api/x HTTP/1.1\r\nHost: k\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`, /^HTTP\/1\.1 400 /, 'request_malformed'],
    ['an asterisk target', () => `OPTIONS * HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`, /^HTTP\/1\.1 400 /, 'path_ambiguous'],
  ]
  for (const [what, text, status, code] of cases) {
    it(`refuses ${what} with ${code}, audited, nothing upstream`, async () => {
      const before = upstream.received.length
      const auditBefore = (await kv.audit()).length
      const answer = await raw(text())
      assert.match(answer, status)
      assert.match(answer, new RegExp(`x-keyvalet-error: ${code}`))
      assert.equal(upstream.received.length, before)
      const records = await kv.audit()
      assert.equal(records.length, auditBefore + 1)
      assert.equal(records.at(-1)?.error, code)
    })
  }
})

describe('the audit record is committed before the sandbox holds the whole response', () => {
  const BODY = 'x'.repeat(5000)
  let release: () => void = () => {}
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  let auditDatabase: string

  before(async () => {
    // The upstream sends all but the end of its answer, then holds it until the test says.
    upstream = await startUpstream({
      handler: (req, res) => {
        const held = new Promise<void>((resolve) => { release = resolve })
        if (req.url === '/whole') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
          res.end(BODY)
          return
        }
        if (req.url === '/length') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
          res.write(BODY.slice(0, -1))
          void held.then(() => res.end(BODY.slice(-1)))
        } else {
          res.writeHead(200, { 'content-type': 'text/plain' }) // chunked
          res.write(BODY)
          void held.then(() => res.end())
        }
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: all, methods: [GET], path: /**, severity: read }]
`)
    key = (await kv.mintKey(['api:read'])).key
    auditDatabase = auditPathFor(parseConfig(readFileSync(kv.configFile, 'utf8'), kv.configFile).databasePath)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  /** Resolves once `check` holds, checking every 10 ms for at most `ms`; false if it never did. */
  async function until(check: () => boolean, ms: number): Promise<boolean> {
    for (let waited = 0; waited < ms; waited += 10) {
      if (check()) return true
      await new Promise((r) => setTimeout(r, 10))
    }
    return check()
  }

  it('a small body that arrives in one piece leaves with its head in one write, after its record', async () => {
    const auditBefore = (await kv.audit()).length
    const socket = connect(Number(new URL(kv.url).port), '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    const first = new Promise<Buffer>((resolve) => socket.once('data', resolve))
    socket.write(`GET /api/whole HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`)
    // Before, the head and all but the last byte went first, and the last byte after the record:
    // two writes, so the first read never held the whole answer.
    const text = (await first).toString('latin1')
    socket.destroy()
    assert.match(text, /^HTTP\/1\.1 200 /)
    assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4), BODY, 'the first read holds the head and the whole body')
    const records = await kv.audit()
    assert.equal(records.length, auditBefore + 1)
    assert.deepEqual([records.at(-1)?.path, records.at(-1)?.bytes_out], ['/whole', BODY.length])
    assert.equal(upstream.received.at(-1)?.url, '/whole')
  })

  for (const [framing, path] of [['a declared length: its last byte', '/length'], ['chunked: its terminating chunk', '/chunked']] as const) {
    it(`${framing} waits for the record`, async () => {
      const auditBefore = (await kv.audit()).length
      const res = await request(`${kv.url}/api${path}`, { headers: { authorization: `Bearer ${key}` } })
      let received = 0
      let ended = false
      let recordsAtEnd = -1
      res.body.on('data', (c: Buffer) => { received += c.length })
      const end = new Promise<void>((resolve) => res.body.on('end', () => {
        ended = true
        // The moment the sandbox holds the whole response: its record must already be there.
        void kv.audit().then((r) => { recordsAtEnd = r.length - auditBefore; resolve() })
      }))
      const expectedBefore = path === '/length' ? BODY.length - 1 : BODY.length
      assert.ok(await until(() => received === expectedBefore, 5000), `the client got the body so far (${received})`)

      // Another connection holds SQLite's write lock: the audit writer waits (busy_timeout), so the record cannot commit.
      const lock = new DatabaseSync(auditDatabase)
      lock.exec('BEGIN IMMEDIATE')
      try {
        release()
        assert.equal(await until(() => ended, 400), false, 'the response completed while its audit record could not be written')
        assert.equal(received, expectedBefore)
        assert.equal((await kv.audit()).length, auditBefore, 'no record yet')
      } finally {
        lock.exec('ROLLBACK')
        lock.close()
      }
      await end
      assert.equal(received, BODY.length)
      assert.equal(recordsAtEnd, 1, 'the record was committed when the client read the end')
      const record = (await kv.audit()).at(-1)
      assert.deepEqual([record?.decision, record?.status, record?.bytes_out], ['allow', 200, BODY.length])
    })
  }
})
