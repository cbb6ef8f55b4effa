import assert from 'node:assert/strict'
import { connect, createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import * as grpc from '@grpc/grpc-js'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { EchoClient, startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const SECRET = 'grpc_secret_token_0123456789abcdef'
const HOST = 'grpc.example.test'

type Unary = (request: unknown, callback: (err: grpc.ServiceError | null, value?: Record<string, unknown>) => void) => grpc.ClientUnaryCall

describe('gRPC through the forward proxy (grpc-js client and server, HTTP/2 on both sides)', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: GrpcUpstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let client: grpc.Client & Record<string, unknown>
  let taskKey: string

  before(async () => {
    upstream = await startGrpcUpstream(pki.tls)
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  echo:
    upstream: https://${HOST}:${upstream.port}
    upstream_http: h2
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: grpc-token, inject: bearer }
    rules:
      - { id: say, methods: [POST], path: /demo.Echo/Say, severity: read }
      - { id: count, methods: [POST], path: /demo.Echo/Count, severity: read }
      - { id: chat, methods: [POST], path: /demo.Echo/Chat, severity: read }
      - { id: fail, methods: [POST], path: /demo.Echo/Fail, severity: read }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('grpc-token', SECRET)
    const { key } = await kv.mintKey(['echo:read'])
    taskKey = key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    // grpc-js reads its proxy from the environment when a channel is made (this test file has a process of its own).
    process.env.grpc_proxy = `http://task:${key}@127.0.0.1:${new URL(kv.forwardUrl).port}`
    delete process.env.no_grpc_proxy
    delete process.env.no_proxy
    client = new EchoClient(`${HOST}:${upstream.port}`, grpc.credentials.createSsl(Buffer.from(kv.caCertPem))) as grpc.Client & Record<string, unknown>
  })
  after(async () => {
    client.close()
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  const unary = (name: string, request: unknown): Promise<{ err: grpc.ServiceError | null; value?: Record<string, unknown>; trailers?: grpc.Metadata }> =>
    new Promise((resolve) => {
      let trailers: grpc.Metadata | undefined
      const call = (client[name] as Unary).call(client, request, (err, value) => setImmediate(() => resolve({ err, ...(value === undefined ? {} : { value }), ...(trailers === undefined ? {} : { trailers }) })))
      call.on('status', (status: grpc.StatusObject) => { trailers = status.metadata })
    })

  it('a unary call: the credential reaches the upstream as authorization metadata, the echo of it is masked, trailers are relayed, the call audited', async () => {
    const before = upstream.calls.length
    const { err, value, trailers } = await unary('Say', { text: 'hello' })
    assert.equal(err, null)
    assert.equal(value?.text, 'hello')
    assert.match(String(value?.authorization), /^Bearer \*+$/, 'the echoed credential is masked in the message')
    assert.equal(trailers?.get('x-upstream-trailer')[0], 'done')
    assert.equal(upstream.calls.length, before + 1)
    assert.equal(upstream.calls.at(-1)?.metadata.authorization, `Bearer ${SECRET}`)
    assert.ok(!JSON.stringify(upstream.calls.at(-1)?.metadata).includes('kvt_'), 'no task key went upstream')
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.mode, record?.decision, record?.rule, record?.path, record?.credential, record?.detail?.http_version], ['forward', 'allow', 'say', '/demo.Echo/Say', 'grpc-token', '2'])
  })

  it('a server-streaming call relays every message and the status', async () => {
    const messages: unknown[] = []
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = (client.Count as (r: unknown) => grpc.ClientReadableStream<unknown>).call(client, { upTo: 5 })
      call.on('data', (m: unknown) => messages.push(m))
      call.on('error', () => {})
      call.on('status', resolve)
    })
    assert.equal(status.code, grpc.status.OK)
    assert.deepEqual(messages, [1, 2, 3, 4, 5].map((n) => ({ n })))
    assert.equal(upstream.calls.at(-1)?.metadata.authorization, `Bearer ${SECRET}`)
    assert.equal((await kv.audit()).at(-1)?.rule, 'count')
  })

  it('a bidirectional call: messages both ways on one stream, then the status', async () => {
    const replies: unknown[] = []
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = (client.Chat as () => grpc.ClientDuplexStream<unknown, unknown>).call(client)
      call.on('data', (m: unknown) => {
        replies.push(m)
        if (replies.length === 1) call.write({ text: 'second' })
        if (replies.length === 2) call.end()
      })
      call.on('error', () => {})
      call.on('status', resolve)
      call.write({ text: 'first' })
    })
    assert.equal(status.code, grpc.status.OK)
    assert.deepEqual(replies, [{ echo: 'FIRST' }, { echo: 'SECOND' }])
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.rule, record?.decision], ['chat', 'allow'])
  })

  it("an upstream's error status (a Trailers-Only answer) reaches the client as it was sent", async () => {
    const { err } = await unary('Fail', {})
    assert.equal(err?.code, grpc.status.NOT_FOUND)
    assert.equal(err?.details, 'no such thing')
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.rule, record?.upstream_status], ['fail', 200])
  })

  it('a method no rule allows is refused as PERMISSION_DENIED with keyvalet\'s code and reason, audited once, never sent', async () => {
    const before = upstream.calls.length
    const audited = (await kv.audit()).length
    const { err } = await unary('Forbidden', {})
    assert.equal(err?.code, grpc.status.PERMISSION_DENIED)
    assert.match(err?.details ?? '', /^keyvalet policy_denied: .*\(no_rule_for_path\)$/)
    assert.equal(upstream.calls.length, before)
    const records = (await kv.audit()).slice(audited)
    assert.equal(records.length, 1)
    assert.deepEqual([records[0]?.decision, records[0]?.error, records[0]?.path], ['deny', 'policy_denied', '/demo.Echo/Forbidden'])
  })

  it('sequential unary calls on one channel share one tunnel, one TLS session to keyvalet and one upstream connection; each call audited once', async () => {
    // The channel reaches keyvalet through a TCP relay that counts the connections made to it (CONNECT tunnels).
    const { relay, opened } = await countingRelay(Number(new URL(kv.forwardUrl ?? '').port))
    process.env.grpc_proxy = `http://task:${taskKey}@127.0.0.1:${(relay.address() as { port: number }).port}`
    const channel = new EchoClient(`${HOST}:${upstream.port}`, grpc.credentials.createSsl(Buffer.from(kv.caCertPem ?? ''))) as grpc.Client & Record<string, unknown>
    const say = (text: string): Promise<unknown> => new Promise((resolve, reject) => {
      (channel.Say as Unary).call(channel, { text }, (err, value) => (err === null ? resolve(value?.text) : reject(err)))
    })
    try {
      await say('first') // the channel's own connection: keyvalet may have to dial the upstream for it
      const connectionsBefore = upstream.connections
      const callsBefore = upstream.calls.length
      const audited = (await kv.audit()).length
      const answers: unknown[] = []
      for (let i = 0; i < 50; i++) answers.push(await say(`call-${i}`))
      assert.deepEqual(answers, Array.from({ length: 50 }, (_, i) => `call-${i}`))
      assert.equal(opened(), 1, 'one CONNECT tunnel for the channel')
      assert.equal(upstream.connections - connectionsBefore, 0, 'no new upstream connection for the 50 calls')
      assert.ok(upstream.connections <= 1, `one upstream connection in all, not ${upstream.connections}`)
      assert.equal(upstream.calls.length - callsBefore, 50)
      assert.ok(upstream.calls.slice(callsBefore).every((c) => c.metadata.authorization === `Bearer ${SECRET}`))
      const records = (await kv.audit()).slice(audited)
      assert.equal(records.length, 50)
      assert.ok(records.every((r) => r.decision === 'allow' && r.rule === 'say' && r.path === '/demo.Echo/Say'))
    } finally {
      channel.close()
      relay.close()
    }
  })
})

/** A TCP relay to 127.0.0.1:`port` that counts the connections it accepts. */
async function countingRelay(port: number): Promise<{ relay: Server; opened: () => number }> {
  let opened = 0
  const relay = createServer({ noDelay: true }, (socket) => {
    opened++
    const onward = connect({ port, host: '127.0.0.1', noDelay: true })
    socket.pipe(onward).pipe(socket)
    const end = (): void => { socket.destroy(); onward.destroy() }
    socket.once('error', end).once('close', end)
    onward.once('error', end).once('close', end)
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  return { relay, opened: () => opened }
}
