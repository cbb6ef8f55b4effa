import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'

export interface Received {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
  readonly rawHeaders: readonly string[]
  readonly body: Buffer
}

export type Handler = (req: IncomingMessage, res: ServerResponse, received: Received) => void

/** A JSON echo of what the upstream received: the default handler. */
export const echo: Handler = (_req, res, received) => {
  const body = JSON.stringify({ method: received.method, url: received.url, headers: received.headers, body: received.body.toString('utf8') })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

export interface Upstream {
  readonly url: string
  readonly port: number
  /** Every request that reached this upstream, in arrival order. */
  readonly received: Received[]
  close(): Promise<void>
}

/**
 * A real HTTP(S) server on 127.0.0.1:0 that records every request it receives (whole body read
 * first unless `streaming` is set, in which case the handler reads the body itself).
 */
export async function startUpstream(opts: { handler?: Handler; tls?: { key: string; cert: string }; streaming?: boolean } = {}): Promise<Upstream> {
  const received: Received[] = []
  const handler = opts.handler ?? echo
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const base = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders }
    if (opts.streaming === true) {
      const r = { ...base, body: Buffer.alloc(0) }
      received.push(r)
      handler(req, res, r)
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r = { ...base, body: Buffer.concat(chunks) }
      received.push(r)
      handler(req, res, r)
    })
  }
  const server: Server = opts.tls === undefined ? createServer(onRequest) : createTlsServer(opts.tls, onRequest)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('upstream has no address')
  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${address.port}`,
    port: address.port,
    received,
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
