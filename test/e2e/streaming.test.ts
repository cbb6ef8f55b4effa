import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const CHUNK = 1024 * 1024
const CHUNKS = 48

/** Resolves when `check()` holds; bounded, so a proxy that buffers fails the test instead of hanging it. */
async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

describe('streaming: bodies pass through keyvalet without being buffered', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  let uploaded = 0
  let downloadGate = 0

  before(async () => {
    upstream = await startUpstream({
      streaming: true,
      handler: (req, res) => {
        if (req.url === '/upload') {
          req.on('data', (c: Buffer) => { uploaded += c.length })
          req.on('end', () => res.end(JSON.stringify({ received: uploaded })))
        } else if (req.url === '/download') {
          req.resume()
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': CHUNK * CHUNKS })
          res.flushHeaders()
          let sent = 0
          const next = (): void => {
            if (sent === CHUNKS) return void res.end()
            if (downloadGate <= sent) return void setTimeout(next, 1)
            sent++
            res.write(Buffer.alloc(CHUNK, 0x61), next)
          }
          next()
        } else if (req.url === '/events') {
          req.resume()
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
          res.write('data: first\n\n')
          req.socket.once('close', () => res.end())
        }
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  files:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: files-token, inject: bearer }
    rules:
      - { id: upload, methods: [PUT], path: /upload, severity: write }
      - { id: download, methods: [GET], path: /download, severity: read }
      - { id: events, methods: [GET], path: /events, severity: read }
`)
    await kv.setSecret('files-token', 'files-secret-abcdefghijkl')
    key = (await kv.mintKey(['files:write'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  it('streams an upload: the upstream receives each chunk before the client sends the next', async () => {
    const { port } = new URL(kv.url)
    const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/files/upload', headers: { authorization: `Bearer ${key}`, 'content-length': CHUNK * CHUNKS } })
    const response = once(req, 'response')
    for (let i = 1; i <= CHUNKS; i++) {
      req.write(Buffer.alloc(CHUNK, 0x62))
      // A buffering proxy would hold everything until the end, and this wait would time out.
      await until(() => uploaded >= (i - 1) * CHUNK, `chunk ${i - 1} upstream`)
    }
    req.end()
    const [res] = (await response) as [import('node:http').IncomingMessage]
    let text = ''
    for await (const c of res) text += c
    assert.equal(res.statusCode, 200)
    assert.deepEqual(JSON.parse(text), { received: CHUNK * CHUNKS })
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.bytes_in, CHUNK * CHUNKS)
    assert.equal(record?.rule, 'upload')
  })

  it('streams a download: the client receives each chunk before the upstream writes the next', async () => {
    const { port } = new URL(kv.url)
    const req = httpRequest({ host: '127.0.0.1', port, path: '/files/download', headers: { authorization: `Bearer ${key}` } })
    req.end()
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
    let received = 0
    downloadGate = 1
    for await (const c of res as AsyncIterable<Buffer>) {
      received += c.length
      downloadGate = Math.floor(received / CHUNK) + 1
    }
    assert.equal(received, CHUNK * CHUNKS)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.bytes_out, CHUNK * CHUNKS)
    assert.equal(record?.upstream_status, 200)
  })

  it('passes a Server-Sent Event through as soon as the upstream sends it', async () => {
    const { port } = new URL(kv.url)
    const req = httpRequest({ host: '127.0.0.1', port, path: '/files/events', headers: { authorization: `Bearer ${key}` } })
    req.end()
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
    assert.equal(res.headers['content-type'], 'text/event-stream')
    const [first] = (await Promise.race([once(res, 'data'), new Promise((_, reject) => setTimeout(() => reject(new Error('event held back')), 3000))])) as [Buffer]
    assert.equal(first.toString(), 'data: first\n\n')
    req.destroy()
  })
})
