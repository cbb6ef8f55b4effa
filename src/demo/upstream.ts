import type { Server } from 'node:http'
import { createServer } from '../node-http.ts'
import { OperatorError } from '../errors.ts'

export interface SeenRequest {
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

/**
 * A stand-in for a real API, on loopback only, so the whole flow can be seen without internet.
 * It answers with what it received — including the Authorization header — which also shows the
 * response redaction at work: the sandbox gets the echo with the secret masked.
 */
export async function startDemoUpstream(opts: { host: string; port: number; onRequest?: (seen: SeenRequest) => void }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      opts.onRequest?.(seen)
      const body = JSON.stringify({ ok: true, item: itemFrom(seen.path), received: { method: seen.method, path: seen.path, authorization: req.headers.authorization ?? null } })
      res.writeHead(seen.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') return reject(err)
      reject(new OperatorError(`the demo upstream cannot listen on ${opts.host}:${opts.port}: the address is already in use (EADDRINUSE)`, 'is another keyvalet start --demo running? Stop it, or change the demo connector\'s upstream port', { cause: err }))
    })
    server.listen(opts.port, opts.host, resolve)
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : opts.port
  return {
    url: `http://${opts.host}:${port}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

function itemFrom(path: string): { id: string; title: string } | null {
  const match = /^\/items\/([^/?]+)/.exec(path)
  return match?.[1] === undefined ? null : { id: match[1], title: `item ${match[1]}` }
}
