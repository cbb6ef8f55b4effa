/**
 * The benchmark upstream, in its own process (fork it; it reports an UpstreamReady over IPC).
 * GET: a fixed ~120-byte JSON body with content-length; GET …/download/N: N bytes (a..z, content-length),
 * streamed from one reused chunk with backpressure. PUT/POST: the body is read and discarded,
 * the answer is `{"bytes":N}` with the count. GET /items/auth-echo answers the Authorization it received.
 * GET …/events: a server-sent-event stream, held open: one small event at once, then one every
 * SSE_INTERVAL_MS (one shared timer for all streams), until the client goes away.
 *
 * Besides plain http on 127.0.0.1, the same handler is served over HTTPS on 127.0.0.1 (leaf for the
 * IP literal 127.0.0.1, signed by a bench CA made here with src/tls/certificate.ts; the CA's PEM is
 * reported so keyvalet can trust it through ca_file) and, with `--mint-hosts N`, over HTTPS on
 * 127.0.0.2 … 127.0.0.(N+1), one listener and leaf each (for the leaf-minting measurement).
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { generateKeyPairSync } from 'node:crypto'
import { createCa, issueLeaf } from '../src/tls/certificate.ts'

export interface UpstreamReady {
  readonly port: number
  readonly bodyBytes: number
  readonly httpsPort: number
  /** PEM of the CA that signed every HTTPS leaf here. */
  readonly caPem: string
  /** `--mint-hosts` listeners: IP literal and port. */
  readonly mintHosts: readonly { host: string; port: number }[]
}

const SSE_INTERVAL_MS = 3000

const prefix = '{"id":1,"name":"widget","tags":["bench","keyvalet"],"ok":true,"pad":"'
const suffix = '"}'
const BODY = Buffer.from(prefix + 'x'.repeat(120 - prefix.length - suffix.length) + suffix)
const GET_HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

const streams = new Set<ServerResponse>()
let tick = 0
setInterval(() => {
  tick++
  const event = `event: tick\ndata: {"n":${tick}}\n\n`
  for (const res of streams) res.write(event)
}, SSE_INTERVAL_MS).unref()

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'PUT' || req.method === 'POST') {
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      const out = Buffer.from(JSON.stringify({ bytes }))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(out.length) })
      res.end(out)
    })
    req.on('error', () => res.destroy())
    return
  }
  if (req.url === '/items/auth-echo') {
    // For the runner's sanity check: shows what credential arrived (keyvalet must mask it on the way back).
    const out = Buffer.from(JSON.stringify({ authorization: req.headers.authorization ?? null }))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(out.length) })
    res.end(out)
    return
  }
  const download = /\/download\/(\d+)$/.exec(req.url ?? '')
  if (download !== null) {
    streamDownload(res, Number(download[1]))
    return
  }
  if (req.url?.endsWith('/events') === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write(`event: hello\ndata: {"n":${tick}}\n\n`)
    streams.add(res)
    res.once('close', () => streams.delete(res))
    return
  }
  res.writeHead(200, GET_HEADERS)
  res.end(BODY)
}

const DOWNLOAD_CHUNK = Buffer.alloc(256 * 1024, 'abcdefghijklmnopqrstuvwxyz')

function streamDownload(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) })
  let left = total
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, DOWNLOAD_CHUNK.length)
      left -= n
      if (!res.write(n === DOWNLOAD_CHUNK.length ? DOWNLOAD_CHUNK : DOWNLOAD_CHUNK.subarray(0, n))) {
        res.once('drain', pump)
        return
      }
    }
    res.end()
  }
  res.once('close', () => { left = 0 })
  pump()
}

function tune<T extends { keepAliveTimeout: number; headersTimeout: number; requestTimeout: number }>(server: T): T {
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  server.requestTimeout = 0 // the 1 GiB upload may take a while; the runner bounds it
  return server
}

function listen(server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown; once(e: 'error', cb: (err: Error) => void): unknown }, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address() as { port: number } | null
      if (address === null) reject(new Error('upstream has no address'))
      else resolve(address.port)
    })
  })
}

const mintCount = (() => {
  const i = process.argv.indexOf('--mint-hosts')
  return i === -1 ? 0 : Number(process.argv[i + 1])
})()
if (!Number.isInteger(mintCount) || mintCount < 0 || mintCount > 250) throw new Error('--mint-hosts N: 0 to 250')

const now = Date.now()
const ca = createCa({ commonName: 'keyvalet bench upstream CA', notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 7 * 86_400_000) })
const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const httpsFor = (host: string): HttpsServer => {
  const leaf = issueLeaf({ ca, host, notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 7 * 86_400_000), key: leafKey })
  return tune(createHttpsServer({ key: leaf.keyPem, cert: leaf.certPem }, handle))
}

const port = await listen(tune(createServer(handle)), '127.0.0.1')
const httpsPort = await listen(httpsFor('127.0.0.1'), '127.0.0.1')
const mintHosts: { host: string; port: number }[] = []
for (let i = 0; i < mintCount; i++) {
  const host = `127.0.0.${i + 2}`
  mintHosts.push({ host, port: await listen(httpsFor(host), host) })
}
const ready: UpstreamReady = { port, bodyBytes: BODY.length, httpsPort, caPem: ca.certPem, mintHosts }
process.send?.(ready)
// `{ cmd: 'streams' }` → `{ streams: N }`: event streams open right now.
process.on('message', (m: { cmd?: string }) => {
  if (m.cmd === 'streams') process.send?.({ streams: streams.size })
})

// Exit with the parent: on SIGTERM, or when the IPC channel closes.
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
