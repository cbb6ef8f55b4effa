import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { ProxyAgent, request } from 'undici'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'echo.example.test'
/** A secret with every character an encoder treats specially. */
const SECRET = 'sk-live/0123+abc=XYZ&q"<%2F~ok'
const USER = 'x-access-token'

const hexBytes = (s: string, f: (hex: string, i: number) => string): string => [...Buffer.from(s)].map((b, i) => `%${f(b.toString(16).padStart(2, '0'), i)}`).join('')
const unicode = (s: string, upper: boolean): string => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')[upper ? 'toUpperCase' : 'toLowerCase']()}`).join('')
const inBlob = (before: string, s: string): string => Buffer.from(`{"authorization":"Bearer ${before}${s}","n":1}`).toString('base64')

/** How an upstream might echo the value it received: each a plain function of it. */
const ECHOES: Record<string, (s: string) => string> = {
  raw: (s) => s,
  'percent-upper': (s) => encodeURIComponent(s),
  'percent-lower': (s) => encodeURIComponent(s).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
  'percent-mixed': (s) => hexBytes(s, (h, i) => (i % 2 === 0 ? h.toUpperCase() : h)),
  'percent-every-byte': (s) => hexBytes(s, (h) => h),
  form: (s) => new URLSearchParams({ v: s }).toString().slice(2),
  json: (s) => JSON.stringify(s).slice(1, -1),
  'json-php': (s) => JSON.stringify(s).slice(1, -1).replaceAll('/', '\\/'),
  'json-unicode-lower': (s) => unicode(s, false),
  'json-unicode-upper': (s) => unicode(s, true),
  html: (s) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('"', '&quot;'),
  'html-numeric': (s) => [...s].map((c) => `&#${c.charCodeAt(0)};`).join(''),
  base64: (s) => Buffer.from(s).toString('base64'),
  base64url: (s) => Buffer.from(s).toString('base64url'),
  'base64-blob-0': (s) => inBlob('', s),
  'base64-blob-1': (s) => inBlob('x', s),
  'base64-blob-2': (s) => inBlob('xy', s),
  'basic-header': () => `Basic ${Buffer.from(`${USER}:${SECRET}`).toString('base64')}`,
}

/** The upstream: GET /echo/<form> answers `<<form of the secret>>`, in two writes (two chunks), and in a header. */
function echoHandler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const auth = req.headers.authorization ?? ''
  const received = auth.startsWith('Bearer ') ? auth.slice(7) : Buffer.from(auth.slice(6), 'base64').toString().slice(USER.length + 1)
  const [, , name, coding] = (req.url ?? '').split('/')
  const echo = ECHOES[name ?? '']?.(received) ?? 'unknown form'
  const body = `<<${echo}>>`
  if (coding === 'gzip') {
    const zipped = gzipSync(body)
    res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': zipped.length })
    return void res.end(zipped)
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'x-echo': echo })
  const cut = Math.floor(body.length / 2)
  res.write(body.slice(0, cut))
  setTimeout(() => res.end(body.slice(cut)), 15)
}

/** True when nothing of the secret survives: not as it is, nor 4 of its bytes in a row in any base64 blob in the text. */
function leaks(text: string): string | undefined {
  if (text.includes(SECRET) || text.includes(encodeURIComponent(SECRET))) return 'the secret'
  for (const blob of text.match(/[A-Za-z0-9+/*_-]{12,}/g) ?? []) {
    const decoded = Buffer.from(blob.replaceAll('*', 'A'), 'base64').toString('latin1')
    for (let k = 0; k + 4 <= SECRET.length; k++) if (decoded.includes(SECRET.slice(k, k + 4))) return `bytes ${k}.. in base64 ${blob}`
  }
  return undefined
}

describe('an upstream echoing the credential in every common encoding: the sandbox gets it masked', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let proxied: ProxyAgent

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls, handler: echoHandler })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  echo:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-secret, inject: bearer }
    rules: [{ id: echo, methods: [GET], path: /echo/**, severity: read }]
  git:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-secret, inject: basic, username: ${USER} }
    rules: [{ id: echo, methods: [GET], path: /echo/**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
    await kv.setSecret('echo-secret', SECRET)
    key = (await kv.mintKey(['echo:read', 'git:read'])).key
    proxied = new ProxyAgent({ uri: kv.forwardUrl ?? '', token: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, requestTls: { ca: kv.caCertPem } })
  })
  after(async () => {
    await proxied.close()
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  const ways = {
    gateway: (path: string) => request(`${kv.url}/echo${path}`, { headers: { authorization: `Bearer ${key}` } }),
    forward: (path: string) => request(`https://${HOST}:${upstream.port}${path}`, { dispatcher: proxied }),
  }

  for (const [mode, send] of Object.entries(ways)) {
    for (const name of Object.keys(ECHOES)) {
      it(`${mode}: ${name}`, async () => {
        const res = await send(`/echo/${name}`)
        const text = await res.body.text()
        assert.equal(res.statusCode, 200)
        assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`, 'the upstream got the real credential')
        const echo = ECHOES[name]?.(SECRET) ?? ''
        assert.match(text, /^<<.*>>$/s)
        assert.notEqual(text, `<<${echo}>>`, 'the echo was masked')
        assert.equal(leaks(text), undefined, text)
        assert.equal(leaks(String(res.headers['x-echo'])), undefined, String(res.headers['x-echo']))
        if (!name.startsWith('base64-blob') && name !== 'basic-header') assert.equal(text, `<<${'*'.repeat(echo.length)}>>`, 'exactly the echo is masked')
        const record = (await kv.audit()).at(-1)
        assert.deepEqual([record?.mode, record?.decision, record?.credential, record?.redactions], [mode, 'allow', 'echo-secret', 2], 'one masking in the header, one in the body')
      })
    }
  }

  it('gateway: a gzip-coded echo is decoded, then masked', async () => {
    const res = await ways.gateway('/echo/json-php/gzip')
    const text = await res.body.text()
    assert.equal(res.headers['content-encoding'], undefined)
    assert.equal(text, `<<${'*'.repeat(ECHOES['json-php']?.(SECRET).length ?? 0)}>>`)
    assert.equal((await kv.audit()).at(-1)?.redactions, 1)
  })

  it('basic: the whole Basic credential (user:secret) and the secret alone are masked, through both listeners', async () => {
    const basic = `${USER}:${key}`
    const gateway = await request(`${kv.url}/git/echo/basic-header`, { headers: { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } })
    const forward = await request(`https://${HOST}:${upstream.port}/echo/base64-blob-1`, { dispatcher: proxied })
    for (const res of [gateway, forward]) {
      const text = await res.body.text()
      assert.equal(leaks(text), undefined, text)
    }
    assert.equal(upstream.received.at(-2)?.headers.authorization, `Basic ${Buffer.from(`${USER}:${SECRET}`).toString('base64')}`)
  })

  it('the audit log never holds the secret in any form', async () => {
    const log = JSON.stringify(await kv.audit())
    assert.equal(leaks(log), undefined)
  })
})
