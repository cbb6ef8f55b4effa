import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { startOAuthServer, type OAuthServer } from '../helpers/oauth-server.ts'

/** A corporate CONNECT proxy on loopback that wants its own credentials and records what it tunnels. */
async function startCorporateProxy(credentials: string): Promise<{ port: number; connects: { authority: string; auth: string | undefined }[]; close(): Promise<void> }> {
  const connects: { authority: string; auth: string | undefined }[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((_req, res) => res.writeHead(405).end())
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket)
    const auth = req.headers['proxy-authorization']
    connects.push({ authority: req.url ?? '', auth })
    if (auth !== `Basic ${Buffer.from(credentials).toString('base64')}`) return void socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n')
    const port = Number((req.url ?? '').split(':').pop())
    const upstream = connect(port, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      socket.pipe(upstream).pipe(socket)
    })
    sockets.add(upstream)
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return { port: address.port, connects, close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }) }
}

describe('chaining upstream connections through a corporate proxy', () => {
  const pki = upstreamCertificate('api.example.test')
  let upstream: Upstream
  let corp: Awaited<ReturnType<typeof startCorporateProxy>>
  let kv: TestKeyvalet
  let key: string
  let oauth: OAuthServer

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    corp = await startCorporateProxy('corp-user:corp-password')
    oauth = await startOAuthServer()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
upstream_proxy: { url: "http://127.0.0.1:${corp.port}", secret: corp-proxy, allow_addresses: [127.0.0.1/32] }
connectors:
  api:
    upstream: https://api.example.test:${upstream.port}
    ca_file: upstream-ca.pem
    credential: { secret: api-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
  badproxy:
    upstream: https://api.example.test:${upstream.port}
    ca_file: upstream-ca.pem
    upstream_proxy: { url: "http://127.0.0.1:${corp.port}", secret: wrong-proxy, allow_addresses: [127.0.0.1/32] }
    credential: { secret: api-token, inject: bearer }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
  svc:
    upstream: https://api.example.test:${upstream.port}
    ca_file: upstream-ca.pem
    allow_insecure: true            # the test token endpoint is http://, reached through the proxy's tunnel
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "${oauth.tokenUrl}", client_id: ${oauth.clientId}, client_secret: svc-client-secret }
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('svc-client-secret', oauth.clientSecret)
    await kv.setSecret('api-token', 'api-secret-through-corp-1')
    await kv.setSecret('corp-proxy', 'corp-user:corp-password')
    await kv.setSecret('wrong-proxy', 'corp-user:nope')
    key = (await kv.mintKey(['api:read', 'badproxy:read', 'svc:read'])).key
  })
  after(async () => {
    await kv.close()
    await corp.close()
    await upstream.close()
    await oauth.close()
  })

  it('fetches tokens through the proxy too: the token endpoint is reached by a CONNECT tunnel, never directly', async () => {
    const tunnels = corp.connects.length
    const res = await request(`${kv.url}/svc/items/2`, { headers: { authorization: `Bearer ${key}` } })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    const { host } = new URL(oauth.tokenUrl)
    assert.deepEqual(corp.connects.slice(tunnels).map((c) => c.authority), [host, `api.example.test:${upstream.port}`], 'the token request, then the API request, each through a tunnel')
    assert.equal(oauth.counts.client_credentials, 1)
    const sent = String(upstream.received.at(-1)?.headers.authorization)
    assert.match(sent, /^Bearer \S+$/)
    assert.equal(oauth.check(sent.slice('Bearer '.length)), `client:${oauth.clientId}`)
    assert.ok(!text.includes(sent.slice('Bearer '.length)), 'the token is masked in what the sandbox gets')
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.connector], ['allow', 'svc'])
  })

  it('tunnels through the proxy with its credentials; TLS to the upstream is still verified by keyvalet', async () => {
    const res = await request(`${kv.url}/api/items/1`, { headers: { authorization: `Bearer ${key}` } })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    assert.deepEqual(corp.connects.at(-1), { authority: `api.example.test:${upstream.port}`, auth: `Basic ${Buffer.from('corp-user:corp-password').toString('base64')}` })
    assert.equal(upstream.received.at(-1)?.headers.authorization, 'Bearer api-secret-through-corp-1')
    assert.ok(!text.includes('api-secret-through-corp-1'))
    assert.equal((await kv.audit()).at(-1)?.decision, 'allow')
  })

  it('fails closed when the proxy refuses its credentials', async () => {
    const before = upstream.received.length
    const res = await request(`${kv.url}/badproxy/items/1`, { headers: { authorization: `Bearer ${key}` } })
    const body = (await res.body.json()) as { error: { code: string } }
    assert.equal(res.statusCode, 502)
    assert.equal(body.error.code, 'upstream_unreachable')
    assert.equal(upstream.received.length, before)
    assert.equal((await kv.audit()).at(-1)?.error, 'upstream_unreachable')
  })
})
