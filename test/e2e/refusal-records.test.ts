import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { exchange, openSocket, openTunnel, parseResponse } from '../helpers/raw-http.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOST = 'api.example.test'

/** Lets records that are still on their way land before they are counted. */
const settle = () => new Promise((r) => setTimeout(r, 300))

describe('one audit record per refused request, however its bytes arrive', () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let gatewayPort: number
  let proxyPort: number

  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  api:
    upstream: https://${HOST}:${upstream.port}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`, { files: { 'upstream-ca.pem': pki.caPem } })
    key = (await kv.mintKey(['api:read'])).key
    gatewayPort = Number(new URL(kv.url).port)
    proxyPort = Number(new URL(kv.forwardUrl ?? '').port)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await dns.close()
  })

  /** A request line and 2 MiB of headers, fed 1 KiB at a time. */
  const oversized = (target: string, host: string): string => {
    const line = `X-Padding: ${'a'.repeat(1000)}\r\n`
    return `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))}\r\n`
  }
  const proxyAuthorization = () => `Basic ${Buffer.from(`task:${key}`).toString('base64')}`
  const paths: [string, () => Promise<{ socket: Awaited<ReturnType<typeof openSocket>>; text: string; mode: string }>][] = [
    ['the gateway', async () => ({ socket: await openSocket(gatewayPort), text: oversized('/api/x', 'k'), mode: 'gateway' })],
    ['the forward listener', async () => ({ socket: await openSocket(proxyPort), text: oversized(`http://${HOST}:${upstream.port}/x`, `${HOST}:${upstream.port}`), mode: 'forward' })],
    ['an intercepted tunnel', async () => ({
      socket: await openTunnel({ proxyPort, authority: `${HOST}:${upstream.port}`, proxyAuthorization: proxyAuthorization(), ca: kv.caCertPem ?? '' }),
      text: oversized('/x', `${HOST}:${upstream.port}`),
      mode: 'forward',
    })],
  ]
  for (const [where, open] of paths) {
    it(`a 2 MiB header block on ${where}, in 1 KiB writes: one 400, one record, nothing upstream`, async () => {
      const auditBefore = (await kv.audit()).length
      const seenBefore = upstream.received.length
      const { socket, text, mode } = await open()
      const answer = parseResponse(await exchange(socket, text, { chunk: 1024, timeoutMs: 10_000 }))
      assert.equal(answer.status, 400)
      assert.equal(answer.headers['x-keyvalet-error'], 'request_malformed')
      await settle()
      const records = (await kv.audit()).slice(auditBefore)
      assert.equal(records.length, 1, `one record, not one per chunk: ${records.length}`)
      assert.deepEqual([records[0]?.mode, records[0]?.error, records[0]?.status, records[0]?.request_id], [mode, 'request_malformed', 400, answer.headers['x-keyvalet-request-id']])
      assert.equal(upstream.received.length, seenBefore)
    })
  }
})
