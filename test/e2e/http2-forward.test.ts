import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import type { ClientHttp2Session } from 'node:http2'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { h2Request, h2Session } from '../helpers/h2-client.ts'
import { openTunnel } from '../helpers/raw-http.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const run = promisify(execFile)
const SECRET = 'ghp_http2ForwardSecret_0123456789'
const HOST = 'api.example.test'

describe('forward proxy: HTTP/2 inside intercepted tunnels', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let caFile: string
  let proxyPort: number
  let authority: string

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  github:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
      - { id: comment, methods: [POST], path: /repos/acme/app/issues/*/comments, severity: write }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('github-token', SECRET)
    key = (await kv.mintKey(['github:write'])).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    caFile = join(kv.dir, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    proxyPort = Number(new URL(kv.forwardUrl).port)
    authority = `${HOST}:${upstream.port}`
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  const session = (): Promise<ClientHttp2Session> => h2Session({ proxyPort, authority, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem ?? '' })

  it('curl --http2: the tunnel speaks HTTP/2, the credential is attached upstream, the echo masked, the stream audited', async () => {
    const before = upstream.received.length
    const { stdout } = await run('curl', ['-s', '--http2', '--max-time', '10', '-x', `http://task:${key}@127.0.0.1:${proxyPort}`, '--cacert', caFile, '-w', '\n%{http_version} %{http_code}', `https://${authority}/repos/acme/app/issues/1`], { encoding: 'utf8' })
    assert.match(stdout, /\n2 200$/, 'curl spoke HTTP/2 to keyvalet')
    assert.equal(upstream.received.length, before + 1)
    const seen = upstream.received.at(-1)
    assert.equal(seen?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(seen?.headers.host, authority, 'the upstream got Host from :authority')
    assert.ok(!Object.keys(seen?.headers ?? {}).some((name) => name.startsWith(':')), 'no pseudo-header went upstream')
    assert.ok(!stdout.includes(SECRET))
    assert.match(stdout, /"authorization":"Bearer \*+"/)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.mode, record?.decision, record?.rule, record?.credential, record?.path, record?.status], ['forward', 'allow', 'read-issues', 'github-token', '/repos/acme/app/issues/1', 200])
    assert.equal(record?.detail?.http_version, '2')
  })

  it("ALPN: the client's preference of h2 and http/1.1 is taken; without ALPN, HTTP/1.1", async () => {
    const chosen = async (alpn: string[] | undefined): Promise<string | false> => {
      const tls = await openTunnel({ proxyPort, authority, proxyAuthorization: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, ca: kv.caCertPem ?? '', ...(alpn === undefined ? {} : { alpn }) })
      tls.destroy()
      return tls.alpnProtocol ?? false
    }
    assert.equal(await chosen(['h2', 'http/1.1']), 'h2')
    assert.equal(await chosen(['http/1.1', 'h2']), 'http/1.1')
    assert.equal(await chosen(['spdy/3', 'h2']), 'h2')
    assert.equal(await chosen(undefined), false)
  })

  it("Node's http2 client: concurrent streams on one connection, each decided, injected, masked and audited on its own", async () => {
    const client = await session()
    try {
      const audited = (await kv.audit()).length
      const before = upstream.received.length
      const paths = ['/repos/acme/app/issues/10', '/repos/acme/app/issues/11', '/repos/acme/other/issues/12']
      const answers = await Promise.all(paths.map((path) => h2Request(client, { ':method': 'GET', ':path': path })))
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 403])
      for (const answer of answers.slice(0, 2)) {
        assert.ok(!answer.body.includes(SECRET))
        assert.match(answer.body, /"authorization":"Bearer \*+"/)
      }
      assert.match(answers[2]?.body ?? '', /"code":"policy_denied"/)
      assert.equal(answers[2]?.headers['x-keyvalet-error'], 'policy_denied')
      assert.equal(upstream.received.length, before + 2)
      assert.deepEqual(upstream.received.slice(before).map((r) => [r.url, r.headers.authorization]).sort(), [['/repos/acme/app/issues/10', `Bearer ${SECRET}`], ['/repos/acme/app/issues/11', `Bearer ${SECRET}`]])
      const records = (await kv.audit()).slice(audited)
      assert.equal(records.length, 3, 'one record per stream')
      assert.deepEqual(records.map((r) => [r.path, r.decision]).sort(), [['/repos/acme/app/issues/10', 'allow'], ['/repos/acme/app/issues/11', 'allow'], ['/repos/acme/other/issues/12', 'deny']])
    } finally {
      client.close()
    }
  })

  it('a request body on a stream is forwarded with its length; the upstream sees it whole', async () => {
    const client = await session()
    try {
      const body = JSON.stringify({ body: 'hello over h2' })
      const answer = await h2Request(client, { ':method': 'POST', ':path': '/repos/acme/app/issues/7/comments', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body)
      assert.equal(answer.status, 200)
      const seen = upstream.received.at(-1)
      assert.equal(seen?.body.toString(), body)
      assert.equal(seen?.headers['content-length'], String(Buffer.byteLength(body)))
      assert.equal((await kv.audit()).at(-1)?.bytes_in, Buffer.byteLength(body))
    } finally {
      client.close()
    }
  })

  it(':authority other than the CONNECT authority, or a Host disagreeing with it, is refused and audited; nothing reaches the upstream', async () => {
    const client = await session()
    try {
      const before = upstream.received.length
      const audited = (await kv.audit()).length
      const other = await h2Request(client, { ':method': 'GET', ':path': '/repos/acme/app/issues/1', ':authority': 'evil.example.test' })
      assert.equal(other.status, 400)
      assert.equal(other.headers['x-keyvalet-error'], 'host_mismatch')
      const both = await h2Request(client, { ':method': 'GET', ':path': '/repos/acme/app/issues/1', host: 'evil.example.test' })
      assert.equal(both.status, 400)
      assert.equal(both.headers['x-keyvalet-error'], 'host_mismatch')
      assert.equal(upstream.received.length, before)
      const records = (await kv.audit()).slice(audited)
      assert.deepEqual(records.map((r) => r.error), ['host_mismatch', 'host_mismatch'])
    } finally {
      client.close()
    }
  })

  it('an Expect other than 100-continue is refused and audited, as over HTTP/1.1', async () => {
    const client = await session()
    try {
      const before = upstream.received.length
      const answer = await h2Request(client, { ':method': 'GET', ':path': '/repos/acme/app/issues/1', expect: 'x-something' })
      assert.equal(answer.status, 400)
      assert.equal(answer.headers['x-keyvalet-error'], 'header_invalid')
      assert.equal(upstream.received.length, before)
      const record = (await kv.audit()).at(-1)
      assert.equal(record?.error, 'header_invalid')
      // Refused before the pipeline authenticates the stream: the record names the tunnel's task.
      assert.deepEqual([record?.agent, record?.detail?.header], ['test-agent', 'expect'])
    } finally {
      client.close()
    }
  })

  it('does not advertise extended CONNECT (RFC 8441), and refuses a CONNECT stream with an answer and a record, so a WebSocket client falls back to HTTP/1.1', async () => {
    const client = await session()
    try {
      await new Promise<void>((resolve) => (client.remoteSettings.maxConcurrentStreams === undefined ? client.once('remoteSettings', () => resolve()) : resolve()))
      assert.equal(client.remoteSettings.enableConnectProtocol, false)
      const before = upstream.received.length
      const answer = await h2Request(client, { ':method': 'CONNECT', ':authority': authority })
      assert.equal(answer.status, 400)
      assert.equal(answer.headers['x-keyvalet-error'], 'upgrade_refused')
      assert.equal(upstream.received.length, before)
      assert.equal((await kv.audit()).at(-1)?.error, 'upgrade_refused')
    } finally {
      client.close()
    }
  })
})
