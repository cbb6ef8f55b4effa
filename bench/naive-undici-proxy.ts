/**
 * The second naive reference reverse proxy, in its own process: the same as naive-proxy.ts
 * (`/echo/<rest>` → upstream `/<rest>`, headers copied, bodies streamed, no auth, policy,
 * credential or audit), but with undici's keep-alive `Pool` as its upstream client, the client
 * keyvalet uses, instead of node:http's Agent. It is the floor for a Node proxy built like
 * keyvalet: what is above it is keyvalet's own work.
 * Usage (fork): naive-undici-proxy.ts <upstreamPort> [connections, default 256] [abort-on-close]; reports `{ port }` over IPC.
 * abort-on-close (for long streams): a client that goes away takes its upstream request with it.
 */

import { createServer, type IncomingHttpHeaders } from 'node:http'
import { Pool } from 'undici'

const upstreamPort = Number(process.argv[2])
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0) throw new Error('usage: naive-undici-proxy.ts <upstreamPort>')
const connections = process.argv[3] === undefined ? 256 : Number(process.argv[3])
const abortOnClose = process.argv[4] === 'abort-on-close'
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections, keepAliveTimeout: 30_000 })
const PREFIX = '/echo'
// undici sets these itself (and refuses some of them as request headers).
const OWN = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect'])

function outbound(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !OWN.has(name)) out[name] = value
  return out
}

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (!url.startsWith(PREFIX + '/')) {
    res.writeHead(404, { 'content-length': '0' }).end()
    return
  }
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined
  const gone = abortOnClose ? new AbortController() : undefined
  if (gone !== undefined) res.once('close', () => { if (!res.writableFinished) gone.abort() })
  pool.request({ path: url.slice(PREFIX.length), method: (req.method ?? 'GET') as 'GET', headers: outbound(req.headers), body: hasBody ? req : null, ...(gone === undefined ? {} : { signal: gone.signal }) })
    .then((up) => {
      const headers = { ...up.headers }
      delete headers.connection
      delete headers['keep-alive']
      res.writeHead(up.statusCode, headers as Record<string, string | string[]>)
      up.body.pipe(res)
      up.body.once('error', () => res.destroy())
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502, { 'content-length': '0' }).end()
      else res.destroy()
    })
})
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000
server.requestTimeout = 0

server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('naive undici proxy has no address')
  process.send?.({ port: address.port })
})

process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
