import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const run = promisify(execFile)
const SECRET = 'ghp_forwardModeSecret_0123456789'
const HOST = 'api.example.test'

describe('forward proxy: CONNECT interception and absolute-form requests', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let plain: Upstream
  let registry: Upstream
  const registryPki = upstreamCertificate('registry.example.test')
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let caFile: string
  let proxyPort: number

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    plain = await startUpstream()
    registry = await startUpstream({ tls: registryPki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] }, 'plain.example.test': { a: ['127.0.0.1'] }, 'registry.example.test': { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
tunnels:
  - { to: "registry.example.test:${registry.port}", allow_addresses: [127.0.0.1/32] }
connectors:
  github:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    placeholder: ghp_placeholder_for_the_sandbox
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
  plain:
    upstream: http://plain.example.test:${plain.port}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('github-token', SECRET)
    key = (await kv.mintKey(['github:read', 'plain:read'])).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    caFile = join(kv.dir, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    proxyPort = Number(new URL(kv.forwardUrl).port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await plain.close()
    await registry.close()
    await dns.close()
  })

  const proxyUrl = () => `http://task:${key}@127.0.0.1:${proxyPort}`

  it('curl over HTTPS through the proxy: the real credential is attached, the answer redacted, the request audited', async () => {
    const before = upstream.received.length
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), '--cacert', caFile, '-H', 'Authorization: Bearer ghp_placeholder_for_the_sandbox', `https://${HOST}:${upstream.port}/repos/acme/app/issues/1`], { encoding: 'utf8' })
    assert.equal(upstream.received.length, before + 1)
    const seen = upstream.received.at(-1)
    assert.equal(seen?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(seen?.url, '/repos/acme/app/issues/1')
    assert.ok(!JSON.stringify(seen?.headers).includes(key) && !JSON.stringify(seen?.headers).includes('placeholder'))
    assert.ok(!stdout.includes(SECRET))
    assert.match(stdout, /"authorization":"Bearer \*+"/)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.mode, record?.decision, record?.rule, record?.credential, record?.path], ['forward', 'allow', 'read-issues', 'github-token', '/repos/acme/app/issues/1'])
  })

  it('Python urllib with HTTPS_PROXY and SSL_CERT_FILE only', async () => {
    const script = 'import urllib.request,sys\nwith urllib.request.urlopen(sys.argv[1], timeout=10) as r: print(r.status)'
    const { stdout } = await run('python3', ['-c', script, `https://${HOST}:${upstream.port}/repos/acme/app/issues/2`], {
      encoding: 'utf8', env: { PATH: process.env.PATH, HTTPS_PROXY: proxyUrl(), SSL_CERT_FILE: caFile, NO_PROXY: '' }, timeout: 15_000,
    })
    assert.equal(stdout.trim(), '200')
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal((await kv.audit()).at(-1)?.path, '/repos/acme/app/issues/2')
  })

  it("Node's fetch with NODE_USE_ENV_PROXY and NODE_EXTRA_CA_CERTS", async () => {
    const { stdout } = await run(process.execPath, ['-e', `fetch(${JSON.stringify(`https://${HOST}:${upstream.port}/repos/acme/app/issues/3`)}).then(async (r) => console.log(r.status, await r.text()))`], {
      encoding: 'utf8', env: { PATH: process.env.PATH, NODE_USE_ENV_PROXY: '1', HTTPS_PROXY: proxyUrl(), NODE_EXTRA_CA_CERTS: caFile }, timeout: 15_000,
    })
    assert.match(stdout, /^200 /)
    assert.ok(!stdout.includes(SECRET))
    assert.equal(upstream.received.at(-1)?.url, '/repos/acme/app/issues/3')
  })

  it('refuses a request outside the grant inside the tunnel, with the JSON error the tool shows', async () => {
    const before = upstream.received.length
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), '--cacert', caFile, `https://${HOST}:${upstream.port}/repos/acme/other/issues/1`], { encoding: 'utf8' })
    assert.match(stdout, /"code":"policy_denied"/)
    assert.equal(upstream.received.length, before)
    assert.equal((await kv.audit()).at(-1)?.reason, 'no_rule_for_path')
  })

  it('plain http absolute-form requests go through the same pipeline', async () => {
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), `http://plain.example.test:${plain.port}/x?y=1`], { encoding: 'utf8' })
    assert.match(stdout, /"url":"\/x\?y=1"/)
    assert.equal(plain.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(plain.received.at(-1)?.headers.host, `plain.example.test:${plain.port}`)
    assert.equal((await kv.audit()).at(-1)?.mode, 'forward')
  })

  it('answers 407 with Proxy-Authenticate without a valid task key', async () => {
    const { stdout } = await run('curl', ['-s', '-i', '--max-time', '10', '-x', `http://127.0.0.1:${proxyPort}`, `http://plain.example.test:${plain.port}/x`], { encoding: 'utf8' })
    assert.match(stdout, /^HTTP\/1\.1 407 /)
    assert.match(stdout, /proxy-authenticate: Basic/i)
    const connectOut = await rawConnect(`CONNECT ${HOST}:${upstream.port} HTTP/1.1\r\nHost: ${HOST}:${upstream.port}\r\nProxy-Authorization: Basic ${Buffer.from('task:kvt_wrong').toString('base64')}\r\n\r\n`)
    assert.match(connectOut, /^HTTP\/1\.1 407 /)
    assert.equal((await kv.audit()).at(-1)?.error, 'task_key_malformed')
  })

  it('refuses CONNECT to a destination no connector or tunnel covers, before dialing it', async () => {
    const out = await rawConnect(`CONNECT elsewhere.example.test:443 HTTP/1.1\r\nHost: elsewhere.example.test:443\r\nProxy-Authorization: Basic ${Buffer.from(`task:${key}`).toString('base64')}\r\n\r\n`)
    assert.match(out, /^HTTP\/1\.1 403 /)
    assert.match(out, /destination_refused/)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.error, record?.agent], ['destination_refused', 'test-agent'])
  })

  it('refuses a TLS handshake whose SNI is not the CONNECT host, before anything reaches the upstream', async () => {
    const before = (await kv.audit()).length
    const seenBefore = upstream.received.length
    const socket = await connectTunnel()
    // The client accepts any leaf of keyvalet's CA whatever its name, so only keyvalet's refusal can end the handshake;
    // should keyvalet complete it, the request below goes in.
    const error = await new Promise<Error | undefined>((resolve) => {
      const tls = tlsConnect({ socket, servername: 'other.example.test', ca: kv.caCertPem, checkServerIdentity: () => undefined }, () => {
        tls.write(`GET /repos/acme/app/issues/1 HTTP/1.1\r\nHost: ${HOST}:${upstream.port}\r\nConnection: close\r\n\r\n`)
        tls.on('data', () => {})
        tls.on('close', () => resolve(undefined))
      })
      tls.on('error', resolve)
    })
    assert.equal(upstream.received.length, seenBefore, 'nothing reached the upstream')
    assert.ok(error instanceof Error, 'the handshake was refused')
    const records = await kv.audit()
    assert.equal(records.length, before + 1)
    assert.equal(records.at(-1)?.error, 'host_mismatch')
  })

  it('refuses a request inside the tunnel whose Host is not the CONNECT host', async () => {
    const before = upstream.received.length
    const socket = await connectTunnel()
    const answer = await new Promise<string>((resolve, reject) => {
      const tls = tlsConnect({ socket, servername: HOST, ca: kv.caCertPem }, () => {
        tls.write(`GET /repos/acme/app/issues/1 HTTP/1.1\r\nHost: evil.example.test\r\nConnection: close\r\n\r\n`)
      })
      let data = ''
      tls.on('data', (c) => { data += c.toString() })
      tls.on('end', () => resolve(data))
      tls.on('error', reject)
    })
    assert.match(answer, /^HTTP\/1\.1 400 /)
    assert.match(answer, /host_mismatch/)
    assert.equal(upstream.received.length, before)
  })

  it('refuses the placeholder anywhere but the credential slot', async () => {
    const before = upstream.received.length
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), '--cacert', caFile, `https://${HOST}:${upstream.port}/repos/acme/app/issues/1?token=ghp_placeholder_for_the_sandbox`], { encoding: 'utf8' })
    assert.match(stdout, /placeholder_misplaced/)
    assert.equal(upstream.received.length, before)
    const { stdout: other } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), '-H', 'X-Note: ghp_placeholder_for_the_sandbox', `http://plain.example.test:${plain.port}/x`], { encoding: 'utf8' })
    assert.match(other, /placeholder_misplaced/, 'the placeholder of one connector sent to another host')
  })

  it('refuses dot-like segments inside an intercepted tunnel and in absolute-form requests (curl --path-as-is)', async () => {
    const cases: [string, string][] = [['..%20', 'dot_like_segment'], ['...', 'dot_like_segment'], ['..%EF%BB%BF', 'dot_like_segment'], ['%EF%BC%8E%EF%BC%8E', 'dot_like_segment'], ['1.', 'trailing_dot']]
    for (const [segment, why] of cases) {
      const climb = `${segment}/${segment}/${segment}/other/issues/1`
      for (const [url, tls, origin] of [
        [`https://${HOST}:${upstream.port}/repos/acme/app/issues/${climb}`, ['--cacert', caFile], upstream],
        [`http://plain.example.test:${plain.port}/a/${climb}`, [], plain],
      ] as const) {
        const before = origin.received.length
        const audited = (await kv.audit()).length
        const { stdout } = await run('curl', ['-s', '--path-as-is', '--max-time', '10', '-x', proxyUrl(), ...tls, '-w', '\n%{http_code}', url], { encoding: 'utf8' })
        assert.match(stdout, /"code":"path_ambiguous"[\s\S]*\n400$/, url)
        assert.equal(origin.received.length, before, `${url}: nothing reached the upstream`)
        const records = (await kv.audit()).slice(audited)
        assert.equal(records.length, 1, 'one audit record')
        assert.deepEqual([records[0]?.mode, records[0]?.reason, records[0]?.detail?.why], ['forward', 'path_ambiguous', why])
      }
    }
  })

  it('tunnels a pass-through destination without interception and without any credential', async () => {
    const registryCa = join(kv.dir, 'registry-ca.pem')
    writeFileSync(registryCa, registryPki.caPem)
    // The client verifies the registry's own certificate: keyvalet did not intercept.
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), '--cacert', registryCa, '-H', `Authorization: Bearer not-touched`, `https://registry.example.test:${registry.port}/pkg`], { encoding: 'utf8' })
    assert.match(stdout, /"url":"\/pkg"/)
    const seen = registry.received.at(-1)
    assert.equal(seen?.headers.authorization, 'Bearer not-touched', 'passed through as sent: no credential attached')
    assert.ok(!JSON.stringify(seen?.headers).includes(SECRET))
    const record = (await kv.audit()).find((r) => r.reason === 'tunnel_allowed')
    assert.deepEqual([record?.mode, record?.decision, record?.credential, record?.agent], ['forward', 'allow', null, 'test-agent'])
  })

  const auth = () => `Proxy-Authorization: Basic ${Buffer.from(`task:${key}`).toString('base64')}\r\n`
  const connectCases: [string, string, RegExp, string][] = [
    ['an IP literal in hex', '0x7f000001:443', /^HTTP\/1\.1 400 /, 'proxy_request_invalid'],
    ['an IP literal in octal', '0177.0.0.1:443', /^HTTP\/1\.1 400 /, 'proxy_request_invalid'],
    ['the cloud metadata address', '169.254.169.254:80', /^HTTP\/1\.1 403 /, 'destination_refused'],
    ['a loopback address no connector names', '127.0.0.1:22', /^HTTP\/1\.1 403 /, 'destination_refused'],
  ]
  for (const [what, authority, status, code] of connectCases) {
    it(`refuses CONNECT to ${what}`, async () => {
      const out = await rawConnect(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth()}\r\n`)
      assert.match(out, status)
      assert.match(out, new RegExp(code))
      assert.equal((await kv.audit()).at(-1)?.error, code)
    })
  }

  it('never sends the credential of an https connector over cleartext http', async () => {
    const before = upstream.received.length
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), `http://${HOST}:${upstream.port}/repos/acme/app/issues/1`], { encoding: 'utf8' })
    assert.match(stdout, /destination_refused/)
    assert.equal(upstream.received.length, before)
  })

  it('survives a client that resets its CONNECT while keyvalet is still deciding it', async () => {
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(proxyPort, '127.0.0.1', () => {
          socket.write(`CONNECT ${HOST}:${upstream.port} HTTP/1.1\r\nHost: ${HOST}:${upstream.port}\r\nProxy-Authorization: Basic ${Buffer.from('task:kvt_wrong').toString('base64')}\r\n\r\n`)
          socket.resetAndDestroy()
          resolve()
        })
        socket.on('error', () => resolve())
      })
    }
    await new Promise((r) => setTimeout(r, 200))
    const { stdout } = await run('curl', ['-s', '--max-time', '10', '-x', proxyUrl(), `http://plain.example.test:${plain.port}/still-alive`], { encoding: 'utf8' })
    assert.match(stdout, /"url":"\/still-alive"/)
  })

  function rawConnect(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(proxyPort, '127.0.0.1', () => socket.write(text))
      let data = ''
      socket.setTimeout(5000, () => socket.destroy())
      socket.on('data', (c) => { data += c.toString() })
      socket.on('close', () => resolve(data))
      socket.on('error', reject)
    })
  }

  /** A CONNECT to the intercepted host, up to its 200: the socket is then ready for TLS. */
  function connectTunnel(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect(proxyPort, '127.0.0.1', () => {
        socket.write(`CONNECT ${HOST}:${upstream.port} HTTP/1.1\r\nHost: ${HOST}:${upstream.port}\r\nProxy-Authorization: Basic ${Buffer.from(`task:${key}`).toString('base64')}\r\n\r\n`)
      })
      socket.once('data', (c) => {
        if (/^HTTP\/1\.1 200 /.test(c.toString())) resolve(socket)
        else reject(new Error(c.toString()))
      })
      socket.on('error', reject)
    })
  }
})

describe('forward proxy: a WebSocket inside an intercepted tunnel', () => {
  it('is decided as a request, gets the credential, and is relayed', async () => {
    const { ProxyAgent, WebSocket } = await import('undici')
    const { startWebSocketUpstream } = await import('../helpers/ws-upstream.ts')
    const pki = upstreamCertificate('ws.example.test')
    const ws = await startWebSocketUpstream({ tls: pki.tls, host: 'ws.example.test' })
    const dns = await startDnsServer({ 'ws.example.test': { a: ['127.0.0.1'] } })
    const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  realtime:
    upstream: https://ws.example.test:${ws.port}
    ca_file: ws-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: rt-key, inject: bearer }
    rules: [{ id: socket, methods: [GET], path: /v1/realtime, severity: write, websocket: true }]
`, { files: { 'ws-ca.pem': pki.caPem } })
    try {
      await kv.setSecret('rt-key', 'rt-secret-value-987654')
      const { key } = await kv.mintKey(['realtime:write'])
      const proxied = new ProxyAgent({ uri: kv.forwardUrl ?? '', token: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, requestTls: { ca: kv.caCertPem } })
      const socket = new WebSocket(`wss://ws.example.test:${ws.port}/v1/realtime`, { dispatcher: proxied })
      const reply = await new Promise<string>((resolve, reject) => {
        socket.addEventListener('open', () => socket.send('ping'))
        socket.addEventListener('message', (m) => resolve(String(m.data)))
        socket.addEventListener('error', (e) => reject(new Error(String((e as ErrorEvent).message))))
        setTimeout(() => reject(new Error('no reply')), 5000)
      })
      socket.close()
      assert.equal(reply, 'echo: ping')
      assert.equal(ws.upgrades.at(-1)?.authorization, 'Bearer rt-secret-value-987654')
      const record = (await kv.audit()).find((r) => r.rule === 'socket')
      assert.deepEqual([record?.mode, record?.decision, record?.status], ['forward', 'allow', 101])
      await proxied.close()
    } finally {
      await kv.close()
      await ws.close()
      await dns.close()
    }
  })
})
