/**
 * The naive reference reverse proxy, in its own process: `/echo/<rest>` → upstream `/<rest>`,
 * node:http both ways, a keep-alive Agent, headers copied, bodies piped. No auth, no policy, no
 * credential, no audit: the floor of what any node:http proxy costs.
 * Usage (fork): naive-proxy.ts <upstreamPort> [maxSockets, default 256] [abort-on-close]; reports `{ port }` over IPC.
 * abort-on-close (for long streams): a client that goes away takes its upstream request with it
 * (off by default, so the throughput baseline stays what it always was).
 */

import { Agent, createServer, request } from 'node:http'

const upstreamPort = Number(process.argv[2])
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0) throw new Error('usage: naive-proxy.ts <upstreamPort>')
const maxSockets = process.argv[3] === undefined ? 256 : Number(process.argv[3])
const agent = new Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 30_000 })
const abortOnClose = process.argv[4] === 'abort-on-close'
const PREFIX = '/echo'

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (!url.startsWith(PREFIX + '/')) {
    res.writeHead(404, { 'content-length': '0' }).end()
    return
  }
  const headers = { ...req.headers, host: `127.0.0.1:${upstreamPort}` }
  delete headers.connection
  const out = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: url.slice(PREFIX.length), headers, agent }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers)
    up.pipe(res)
  })
  out.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-length': '0' }).end()
    else res.destroy()
  })
  if (abortOnClose) res.once('close', () => { if (!res.writableFinished) out.destroy() })
  req.pipe(out)
})
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000
server.requestTimeout = 0

server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('naive proxy has no address')
  process.send?.({ port: address.port })
})

process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
