import assert from 'node:assert/strict'
import { it } from 'node:test'
import { request } from 'undici'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

it('finishes a request in flight when it shuts down, and accepts no new ones', async () => {
  const upstream = await startUpstream({ handler: (_req, res) => setTimeout(() => res.end('slow answer'), 300) })
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  slow:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
  let closing: Promise<void> | undefined
  try {
    const { key } = await kv.mintKey(['slow:read'])
    const inFlight = request(`${kv.url}/slow/x`, { headers: { authorization: `Bearer ${key}` } })
    // Bounded wait for the request to be at the upstream (which answers 300 ms after it arrives).
    for (let i = 0; i < 200 && upstream.received.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    assert.equal(upstream.received.length, 1)
    const records = await kv.audit()
    closing = kv.close()
    const res = await inFlight
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), 'slow answer')
    await closing
    await assert.rejects(request(`${kv.url}/slow/x`, { headers: { authorization: `Bearer ${key}` } }), /ECONNREFUSED/)
    assert.equal(records.length, 0, 'nothing was audited before the request finished')
  } finally {
    // A failed assertion must not leave keyvalet listening (the test process would never exit).
    await (closing ?? kv.close())
    await upstream.close()
  }
})

it('cuts off a client that is slow to send its headers (408), but not a slow upload', async () => {
  const upstream = await startUpstream()
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
limits: { request_timeout_ms: 300 }
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: put, methods: [PUT], path: /**, severity: write }]
`)
  try {
    const { key } = await kv.mintKey(['up:write'])
    const { connect } = await import('node:net')
    const { port } = new URL(kv.url)
    const slowHead = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET /up/x HTTP/1.1\r\nHost: k\r\n'))
      let data = ''
      socket.on('data', (c) => { data += c.toString() })
      socket.on('close', () => resolve(data))
      setTimeout(() => socket.destroy(), 5000)
    })
    assert.match(slowHead, /^HTTP\/1\.1 408 /)
    assert.match(slowHead, /x-keyvalet-error: request_timeout/)
    const { request: httpRequest } = await import('node:http')
    const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/up/file', headers: { authorization: `Bearer ${key}`, 'content-length': 10 } })
    const answered = new Promise<number>((resolve, reject) => req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject))
    for (let i = 0; i < 10; i++) {
      req.write('x')
      await new Promise((r) => setTimeout(r, 100)) // 1 s in all, well past the 300 ms head limit
    }
    req.end()
    assert.equal(await answered, 200)
    assert.equal(upstream.received.at(-1)?.body.toString(), 'xxxxxxxxxx')
    // The upload lasts about audit.open_after_ms, so it may also have an open record: its final record is what counts here.
    const records = (await kv.audit()).filter((r) => r.phase !== 'open')
    assert.deepEqual(records.map((r) => r.error), ['request_timeout', null])
  } finally {
    await kv.close()
    await upstream.close()
  }
})

it('answers 504 when the upstream sends no response head in time, and aborts what a departed client started', async () => {
  const closed: string[] = []
  const arrived: string[] = []
  const upstream = await startUpstream({
    streaming: true,
    handler: (req) => {
      arrived.push(req.url ?? '')
      req.resume()
      req.socket.once('close', () => closed.push(req.url ?? ''))
    },
  })
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
limits: { upstream_timeout_ms: 300 }
connectors:
  stuck:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
  try {
    const { key } = await kv.mintKey(['stuck:read'])
    const started = Date.now()
    const res = await request(`${kv.url}/stuck/slow`, { headers: { authorization: `Bearer ${key}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 504)
    assert.equal(res.headers['x-keyvalet-error'], 'upstream_timeout')
    assert.ok(Date.now() - started < 5000)
    assert.equal((await kv.audit()).at(-1)?.error, 'upstream_timeout')

    const { request: httpRequest } = await import('node:http')
    const { port } = new URL(kv.url)
    const gone = httpRequest({ host: '127.0.0.1', port, path: '/stuck/abandoned', headers: { authorization: `Bearer ${key}` } })
    gone.on('error', () => {})
    gone.end()
    // The client leaves once its request is at the upstream (waiting for it is bounded, not timed).
    for (let i = 0; i < 200 && !arrived.includes('/abandoned'); i++) await new Promise((r) => setTimeout(r, 10))
    assert.ok(arrived.includes('/abandoned'), 'the request reached the upstream')
    gone.destroy()
    for (let i = 0; i < 200 && !closed.includes('/abandoned'); i++) await new Promise((r) => setTimeout(r, 10))
    assert.ok(closed.includes('/abandoned'), 'the upstream request of a client that left was aborted')
    let record = (await kv.audit()).at(-1)
    for (let i = 0; i < 200 && record?.path !== '/abandoned'; i++) {
      await new Promise((r) => setTimeout(r, 10))
      record = (await kv.audit()).at(-1)
    }
    assert.deepEqual([record?.decision, record?.error, record?.reason], ['error', 'client_closed', 'client_closed'])
  } finally {
    await kv.close()
    await upstream.close()
  }
})
