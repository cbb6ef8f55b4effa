import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request, WebSocket } from 'undici'
import type { ServerResponse } from 'node:http'
import type { AuditRecord } from '../../src/audit/record.ts'
import { verifyAudit } from '../../src/audit/verify.ts'
import { startChildKeyvalet, type ChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { startWebSocketUpstream } from '../helpers/ws-upstream.ts'

const SSE_SECRET = 'sse-secret-value-0123456789abcdef'
const WS_SECRET = 'ws-secret-value-0123456789abcdef'

/** Bounded wait for `check()`. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('streams in flight when keyvalet stops: an open record survives a crash, shutdown closes it', () => {
  let sse: Upstream
  let ws: Awaited<ReturnType<typeof startWebSocketUpstream>>
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const dirs: string[] = []

  before(async () => {
    // A real SSE upstream: one event at once, then one every 50 ms, until the connection goes.
    sse = await startUpstream({
      handler: (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        res.write('data: first\n\n')
        const timer = setInterval(() => res.write('data: tick\n\n'), 50)
        req.socket.once('close', () => clearInterval(timer))
      },
    })
    ws = await startWebSocketUpstream()
  })
  after(async () => {
    await sse.close()
    await ws.close()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  /** A fresh data folder and keyvalet child process with an SSE and a WebSocket connector, and a task key for both. */
  async function start(extra = ''): Promise<{ kv: ChildKeyvalet; configFile: string; key: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'keyvalet-streams-'))
    dirs.push(dir)
    const configFile = join(dir, 'keyvalet.yaml')
    writeFileSync(configFile, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./data
audit: { reserve_bytes: 65536 }
${extra}
connectors:
  events:
    upstream: ${sse.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: sse-token, inject: bearer }
    rules: [{ id: stream, methods: [GET], path: /events, severity: read }]
  realtime:
    upstream: ${ws.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: ws-token, inject: bearer }
    rules: [{ id: socket, methods: [GET], path: /socket, severity: read, websocket: true }]
`)
    assert.equal((await cli(['secret', 'set', 'sse-token', '--config', configFile], { env, input: SSE_SECRET })).code, 0)
    assert.equal((await cli(['secret', 'set', 'ws-token', '--config', configFile], { env, input: WS_SECRET })).code, 0)
    const created = await cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'events:read', '--grant', 'realtime:read', '--json'], { env })
    assert.equal(created.code, 0, created.stderr)
    const { key } = JSON.parse(created.stdout) as { key: string }
    return { kv: await startChildKeyvalet({ configFile, env }), configFile, key }
  }

  /** An SSE stream and a WebSocket, both relayed and both having delivered data to the client. */
  async function openStreams(kv: ChildKeyvalet, key: string) {
    const stream = await request(`${kv.url}/events/events`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(stream.statusCode, 200)
    let events = ''
    const ended = new Promise<void>((resolve) => stream.body.on('data', (c: Buffer) => { events += c.toString() }).on('end', resolve).on('error', () => resolve()))
    await until(() => events.includes('data: first'), 'the first event')
    const socket = new WebSocket(`${kv.url.replace('http', 'ws')}/realtime/socket`, { headers: { authorization: `Bearer ${key}` } })
    const closed = new Promise<void>((resolve) => socket.addEventListener('close', () => resolve()))
    socket.addEventListener('error', () => {})
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve())
      socket.addEventListener('error', () => reject(new Error('the WebSocket did not open')))
    })
    const echoed = new Promise<string>((resolve) => socket.addEventListener('message', (m) => resolve(String(m.data))))
    socket.send('hello')
    assert.equal(await echoed, 'echo: hello')
    return { ended, closed, events: () => events }
  }

  async function records(configFile: string): Promise<AuditRecord[]> {
    const tail = await cli(['audit', 'tail', '-n', '100', '--config', configFile], { env })
    assert.equal(tail.code, 0, tail.stderr)
    assert.ok(!tail.stdout.includes(SSE_SECRET) && !tail.stdout.includes(WS_SECRET))
    return tail.stdout.trim().split('\n').filter((l) => l !== '').map((line) => JSON.parse(line) as AuditRecord)
  }

  it('kill -9 mid-stream: the SSE stream and the WebSocket each have their open record; verify and tail --open name them', async () => {
    const { kv, configFile, key } = await start()
    try {
      const streams = await openStreams(kv, key)
      assert.equal(sse.received.at(-1)?.headers.authorization, `Bearer ${SSE_SECRET}`)
      assert.equal(ws.upgrades.at(-1)?.authorization, `Bearer ${WS_SECRET}`)
      await kv.stop('SIGKILL')
      await streams.ended
      await streams.closed
    } finally {
      await kv.stop('SIGKILL')
    }
    const written = await records(configFile)
    assert.deepEqual(written.map((r) => [r.phase, r.path, r.status, r.decision, r.credential, r.error]), [
      ['open', '/events', 200, 'allow', 'sse-token', null],
      ['open', '/socket', 101, 'allow', 'ws-token', null],
    ])
    const verified = await cli(['audit', 'verify', '--config', configFile], { env })
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /^ok: 2 records/)
    assert.match(verified.stdout, /2 streams open/)
    const open = await cli(['audit', 'tail', '--open', '--config', configFile], { env })
    assert.equal(open.code, 0, open.stderr)
    assert.deepEqual(open.stdout.trim().split('\n').map((l) => (JSON.parse(l) as AuditRecord).seq), [1, 2])
  })

  it('SIGTERM with a short grace period: streams still open at its end are cut, and each gets its closing record saying so', async () => {
    const { kv, configFile, key } = await start('limits: { shutdown_grace_ms: 300 }')
    let exit: { code: number | null } | undefined
    try {
      const streams = await openStreams(kv, key)
      const stopping = Date.now()
      exit = await kv.stop('SIGTERM')
      assert.ok(Date.now() - stopping < 8000, 'the grace period bounds the shutdown')
      await streams.ended
      await streams.closed
      assert.ok(streams.events().includes('data: tick'), 'the stream kept flowing during the grace period')
    } finally {
      await kv.stop('SIGKILL')
    }
    assert.equal(exit?.code, 0)
    const written = await records(configFile)
    const of = (path: string) => written.filter((r) => r.path === path)
    for (const [path, status, credential] of [['/events', 200, 'sse-token'], ['/socket', 101, 'ws-token']] as const) {
      const [open, close, ...more] = of(path)
      assert.equal(more.length, 0)
      assert.equal(open?.phase, 'open')
      assert.equal(close?.phase, 'close')
      assert.equal(close?.opened, open?.seq)
      assert.equal(close?.request_id, open?.request_id)
      assert.deepEqual([close?.status, close?.decision, close?.credential, close?.error], [status, 'error', credential, 'shutting_down'])
      assert.ok((close?.bytes_out ?? 0) > 0)
    }
    const verified = await cli(['audit', 'verify', '--config', configFile], { env })
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /^ok: 4 records/)
    assert.doesNotMatch(verified.stdout, /open/)
  })
})

it('a request that outlasts audit.open_after_ms gets its open record while in flight (no answer yet: status 0), then its closing record', async () => {
  let held: ServerResponse | undefined
  const upstream = await startUpstream({ handler: (_req, res) => { held = res } })
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
audit: { open_after_ms: 100, reserve_bytes: 65536 }
connectors:
  slow:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: slow-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /answer, severity: read }]
`)
  try {
    await kv.setSecret('slow-token', 'slow-secret-0123456789abcdef')
    const { key } = await kv.mintKey(['slow:read'])
    const pending = request(`${kv.url}/slow/answer`, { headers: { authorization: `Bearer ${key}` } })
    await until(() => held !== undefined, 'the request at the upstream')
    let records = await kv.audit()
    for (let i = 0; i < 500 && records.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10))
      records = await kv.audit()
    }
    assert.deepEqual(records.map((r) => [r.phase, r.path, r.status, r.upstream_status, r.credential, r.decision]), [['open', '/answer', 0, null, 'slow-token', 'allow']])
    held?.writeHead(200, { 'content-type': 'text/plain' }).end('at last')
    const res = await pending
    assert.equal(await res.body.text(), 'at last')
    records = await kv.audit()
    assert.equal(records.length, 2)
    assert.deepEqual([records[1]?.phase, records[1]?.opened, records[1]?.request_id, records[1]?.status, records[1]?.upstream_status, records[1]?.error], ['close', records[0]?.seq, records[0]?.request_id, 200, 200, null])
    const verified = await verifyAudit(kv.runtime.store.audit, await kv.runtime.openAuditKey())
    assert.ok(verified.ok && verified.count === 2 && verified.chains.every((c) => c.open.length === 0), JSON.stringify(verified))
  } finally {
    held?.destroy()
    await kv.close()
    await upstream.close()
  }
})
