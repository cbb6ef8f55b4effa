import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { WebSocket } from 'undici'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startWebSocketUpstream } from '../helpers/ws-upstream.ts'

const SECRET = 'sk-realtime-secret-0123456789'

describe('WebSocket upgrades through the gateway', () => {
  let upstream: Awaited<ReturnType<typeof startWebSocketUpstream>>
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    // On /v1/echo the upstream's 101 echoes the credential it received, in headers that are relayed and one that is not.
    upstream = await startWebSocketUpstream({
      handshakeHeaders: (req): Record<string, string> => {
        if (req.url !== '/v1/echo') return {}
        const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '')
        return { 'Sec-WebSocket-Protocol': token, 'Sec-WebSocket-Extensions': `x-echo; token=${token}`, 'X-Echo': token }
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
budgets:
  downloads: { connector: realtime, rule: metered-down, bytes_down: 300 }
  uploads: { connector: realtime, rule: metered-up, bytes_up: 300 }
connectors:
  realtime:
    upstream: ${upstream.url}/v1
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: rt-key, inject: bearer }
    rules:
      - { id: socket, methods: [GET], path: /realtime, severity: write, websocket: true }
      - { id: plain, methods: [GET], path: /plain, severity: read }
      - { id: echo, methods: [GET], path: /echo, severity: write, websocket: true }
      - { id: metered-down, methods: [GET], path: /metered-down, severity: write, websocket: true }
      - { id: metered-up, methods: [GET], path: /metered-up, severity: write, websocket: true }
`)
    await kv.setSecret('rt-key', SECRET)
    key = (await kv.mintKey(['realtime:write'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  function open(path: string, authorization: string): Promise<{ ws: WebSocket } | { error: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`${kv.url.replace('http', 'ws')}/realtime${path}`, { headers: { authorization } })
      ws.addEventListener('open', () => resolve({ ws }))
      ws.addEventListener('error', (e) => resolve({ error: String((e as ErrorEvent).message ?? 'error') }))
    })
  }

  it('relays an allowed upgrade with the real credential attached; audits it open at the switch and closed with its byte counts when it ends', async () => {
    const before = (await kv.audit()).length
    const opened = await open('/realtime', `Bearer ${key}`)
    assert.ok('ws' in opened, JSON.stringify(opened))
    const { ws } = opened
    const atSwitch = await kv.audit()
    assert.equal(atSwitch.length, before + 1, 'the open record is committed before the 101')
    const reply = await new Promise<string>((resolve) => {
      ws.addEventListener('message', (m) => resolve(String(m.data)))
      ws.send('hello')
    })
    assert.equal(reply, 'echo: hello')
    const closed = new Promise((resolve) => ws.addEventListener('close', resolve))
    ws.close()
    await closed
    const seen = upstream.upgrades.at(-1)
    assert.equal(seen?.authorization, `Bearer ${SECRET}`)
    assert.ok(!JSON.stringify(seen).includes(key))
    let records = await kv.audit()
    for (let i = 0; i < 200 && records.length < before + 2; i++) {
      await new Promise((r) => setTimeout(r, 10))
      records = await kv.audit()
    }
    assert.equal(records.length, before + 2)
    const [openRecord, closeRecord] = records.slice(-2)
    assert.deepEqual([openRecord?.phase, openRecord?.decision, openRecord?.rule, openRecord?.status, openRecord?.upstream_status, openRecord?.credential], ['open', 'allow', 'socket', 101, 101, 'rt-key'])
    assert.deepEqual([closeRecord?.phase, closeRecord?.opened, closeRecord?.request_id, closeRecord?.decision, closeRecord?.status, closeRecord?.error], ['close', openRecord?.seq, openRecord?.request_id, 'allow', 101, null])
    assert.ok((closeRecord?.bytes_in ?? 0) > 0 && (closeRecord?.bytes_out ?? 0) > 0, 'the closing record counts the relayed bytes')
  })

  it('masks the secret the upstream echoes in its 101 handshake headers', async () => {
    const auditBefore = (await kv.audit()).length
    const { port } = new URL(kv.url)
    const head = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`GET /realtime/echo HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n')
      })
      let data = ''
      let closing = false
      socket.setTimeout(5000, () => socket.destroy(new Error('no 101')))
      socket.on('data', (c: Buffer) => {
        data += c.toString('latin1')
        if (data.includes('\r\n\r\n') && !closing) {
          closing = true
          resolve(data.slice(0, data.indexOf('\r\n\r\n')))
          socket.write(Buffer.from([0x88, 0x80, 0, 0, 0, 0])) // a masked close frame: the upstream closes
        }
      })
      socket.on('end', () => socket.destroy())
      socket.on('error', reject)
    })
    assert.match(head, /^HTTP\/1\.1 101 /)
    assert.equal(upstream.upgrades.at(-1)?.authorization, `Bearer ${SECRET}`, 'the upstream got the real credential, and echoed it')
    assert.ok(!head.includes(SECRET), `the secret came back in the 101: ${head}`)
    const mask = '*'.repeat(SECRET.length)
    assert.match(head, new RegExp(`\r\nsec-websocket-protocol: \\*{${SECRET.length}}\r\n`, 'i'))
    assert.ok(head.includes(`x-echo; token=${mask}`))
    assert.ok(!/\r\nx-echo:/i.test(head), 'headers outside the handshake are not relayed')
    const records = (await kv.audit()).slice(auditBefore)
    assert.deepEqual(records.map((r) => [r.rule, r.status, r.redactions]), [['echo', 101, 2]])
  })

  it('refuses an upgrade on a rule that does not allow one, before anything reaches the upstream', async () => {
    const upgradesBefore = upstream.upgrades.length
    const result = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(`${kv.url}/realtime/plain`, { headers: { authorization: `Bearer ${key}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
        req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) })
        req.on('upgrade', () => reject(new Error('upgraded')))
        req.on('error', reject)
        req.end()
      }, reject)
    })
    assert.equal(result, 403)
    assert.equal(upstream.upgrades.length, upgradesBefore)
    // By path: an earlier test's WebSocket may write its closing record after this one.
    const records = (await kv.audit()).filter((r) => r.path?.endsWith('/plain') === true)
    assert.equal(records.length, 1)
    assert.deepEqual([records[0]?.decision, records[0]?.reason, records[0]?.error], ['deny', 'upgrade_not_allowed', 'policy_denied'])
  })

  /** An upgrade request's answer: 101, or the refusal's status and error code. */
  function upgradeAnswer(path: string, authorization: string): Promise<{ status: number; error: string | undefined }> {
    return new Promise((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(`${kv.url}/realtime${path}`, { headers: { authorization, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
        req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode ?? 0, error: res.headers['x-keyvalet-error'] as string | undefined }) })
        req.on('upgrade', (_res, socket) => { socket.destroy(); resolve({ status: 101, error: undefined }) })
        req.on('error', reject)
        req.end()
      }, reject)
    })
  }

  for (const [direction, path, field] of [['down', '/metered-down', 'bytes_out'], ['up', '/metered-up', 'bytes_in']] as const) {
    it(`counts a WebSocket's bytes ${direction} toward a byte budget while it is open: closed with 1008 once it is used up, the next upgrade refused 429`, async () => {
      const session = await kv.mintKey(['realtime:write'])
      const opened = await open(path, `Bearer ${session.key}`)
      assert.ok('ws' in opened, JSON.stringify(opened))
      const { ws } = opened
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason })))
      const replies: string[] = []
      ws.addEventListener('message', (m) => replies.push(String(m.data)))
      // Each message is about 106 bytes up and 112 down: three pass 300 either way.
      for (let i = 0; i < 3; i++) ws.send(`${i}${'x'.repeat(99)}`)
      const timeout = setTimeout(() => ws.close(), 10_000)
      const { code, reason } = await closed
      clearTimeout(timeout)
      assert.deepEqual([code, reason], [1008, 'budget_exhausted'], 'closed by keyvalet with a close code, within the watch interval')
      assert.equal(replies.length, 3, 'the frames relayed before the close arrived whole')
      assert.equal(upstream.upgrades.at(-1)?.authorization, `Bearer ${SECRET}`)

      const next = await upgradeAnswer(path, `Bearer ${session.key}`)
      assert.deepEqual(next, { status: 429, error: 'budget_exhausted' })
      let records = (await kv.audit()).filter((r) => r.session === session.session)
      for (let i = 0; i < 200 && records.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 10))
        records = (await kv.audit()).filter((r) => r.session === session.session)
      }
      const closeRecord = records.find((r) => r.phase === 'close')
      assert.deepEqual([records[0]?.phase, records[0]?.decision], ['open', 'allow'])
      assert.deepEqual([closeRecord?.decision, closeRecord?.status, closeRecord?.error], ['deny', 101, 'budget_exhausted'], 'the closing record says the budget ended it')
      assert.ok((closeRecord?.[field] ?? 0) >= 300, `the closing record counts the ${field} charged: ${closeRecord?.[field]}`)
      const refused = records.find((r) => r.phase !== 'open' && r.phase !== 'close')
      assert.deepEqual([refused?.decision, refused?.error, refused?.status], ['deny', 'budget_exhausted', 429])
    })
  }

  it('refuses an upgrade without a valid task key', async () => {
    const opened = await open('/realtime', 'Bearer nope')
    assert.ok('error' in opened)
    assert.equal((await kv.audit()).filter((r) => r.session === null).at(-1)?.error, 'task_key_malformed')
  })
})
