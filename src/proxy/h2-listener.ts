import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { Config } from '../config/load.ts'
import { KeyvaletError } from '../errors.ts'
import type { ForwardTarget } from './context.ts'
import type { Handler } from './handler.ts'

/** What an intercepted tunnel fixed at CONNECT time (forward-proxy.ts); every stream inside it is decided on its own. */
export interface Tunnel {
  readonly origin: string
  readonly authority: string
  readonly connect: string
  readonly key: string
}

/**
 * HTTP/2 inside intercepted tunnels whose TLS handshake chose `h2` by ALPN. Never bound to a port:
 * forward-proxy.ts hands it each such TLS socket. Each stream is adapted to the one request seam
 * (Node's compatibility request/response) and goes through the same pipeline as an HTTP/1.1
 * request, with the same refusals and one audit record per stream.
 *
 * What differs from HTTP/1.1 is settled here and in the seam's shared code: nghttp2 itself resets
 * a stream whose header block breaks RFC 9113 §8.2 (upper-case names, CR/LF/NUL, connection-specific
 * fields, pseudo-headers unknown, repeated or after regular fields) or whose DATA disagrees with
 * its content-length; `:authority` stands for Host (route.ts); pseudo-headers never go upstream
 * (headers.ts). The session's own limits (h2-limits.ts) bound what one connection may cost.
 */
export function createH2Listener(handler: Handler, settings: H2Settings): { accept(socket: Duplex, tunnel: Tunnel): void; server: Http2Server } {
  const tunnels = new WeakMap<object, Tunnel>()
  let accepting: Tunnel | undefined
  const server = createServer(settings.options, (req, res) => onStream(req, res))
  // Left without a listener, Node answers a CONNECT stream 405 itself, unaudited.
  server.on('connect', (req: Http2ServerRequest, res: Http2ServerResponse) => onStream(req, res))
  // Node creates the session, and tells of it, synchronously inside 'connection' (accept below).
  server.on('session', (session: ServerHttp2Session) => {
    if (accepting !== undefined) tunnels.set(session, accepting)
  })

  function onStream(req: Http2ServerRequest, res: Http2ServerResponse): void {
    const tunnel = req.stream.session === undefined ? undefined : tunnels.get(req.stream.session)
    if (tunnel === undefined) return void req.stream.close()
    const target: ForwardTarget = { origin: tunnel.origin, authority: tunnel.authority, requestTarget: req.url ?? '', tunnel: tunnel.connect }
    // The compatibility objects stand in for node:http's: what the pipeline reads of them is the same (headers, url, method, body stream; writeHead, write, end, close).
    const ctx = handler.newContext(req as unknown as IncomingMessage, { mode: 'forward', target, proxyKey: tunnel.key })
    const refusal = streamRefusal(req)
    if (refusal !== undefined) return void handler.reject(ctx, res as unknown as ServerResponse, refusal)
    void handler.request(ctx, res as unknown as ServerResponse)
  }

  return {
    server,
    accept(socket, tunnel) {
      accepting = tunnel
      try {
        server.emit('connection', socket)
      } finally {
        accepting = undefined
      }
    },
  }
}

/**
 * What an HTTP/2 stream may not ask of an intercepted tunnel, beyond what nghttp2 refuses: CONNECT
 * (plain, or RFC 8441's extended CONNECT for WebSockets, which keyvalet does not advertise, so a
 * client falls back to an HTTP/1.1 upgrade) and any scheme but https.
 */
function streamRefusal(req: Http2ServerRequest): KeyvaletError | undefined {
  const headers = req.headers
  if (req.method === 'CONNECT' || headers[':protocol'] !== undefined) {
    return new KeyvaletError('upgrade_refused', { message: 'CONNECT over HTTP/2 (RFC 8441 WebSockets included) is not taken inside an intercepted tunnel; open WebSockets over HTTP/1.1.', detail: { protocol: String(headers[':protocol'] ?? 'connect').slice(0, 40) } })
  }
  if (headers[':scheme'] !== 'https') return new KeyvaletError('request_malformed', { message: 'An HTTP/2 request inside an intercepted tunnel must have :scheme https.', detail: { scheme: String(headers[':scheme'] ?? '').slice(0, 40) } })
  return undefined
}

/** The HTTP/2 session options of the intercepting listener, from `limits.h2_*`. */
export interface H2Settings {
  readonly options: Parameters<typeof createServer>[0]
}

export function h2Settings(limits: Config['limits']): H2Settings {
  return {
    options: {
      settings: { enableConnectProtocol: false, maxHeaderListSize: 32 * 1024, maxConcurrentStreams: 100 },
      maxHeaderListPairs: 128,
      maxSessionMemory: 10,
      maxSettings: 32,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      unknownProtocolTimeout: limits.request_timeout_ms,
    },
  }
}
