/**
 * The benchmark upstream, in its own process (fork it; it reports `{ port }` over IPC).
 * GET: a fixed ~120-byte JSON body with content-length. PUT/POST: the body is read and discarded,
 * the answer is `{"bytes":N}` with the count. GET /items/auth-echo answers the Authorization it received.
 */

import { createServer } from 'node:http'

const prefix = '{"id":1,"name":"widget","tags":["bench","keyvalet"],"ok":true,"pad":"'
const suffix = '"}'
const BODY = Buffer.from(prefix + 'x'.repeat(120 - prefix.length - suffix.length) + suffix)
const GET_HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

const server = createServer((req, res) => {
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
  res.writeHead(200, GET_HEADERS)
  res.end(BODY)
})
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000
server.requestTimeout = 0 // the 1 GiB upload may take a while; the runner bounds it

server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('upstream has no address')
  process.send?.({ port: address.port, bodyBytes: BODY.length })
})

// Exit with the parent: on SIGTERM, or when the IPC channel closes.
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
