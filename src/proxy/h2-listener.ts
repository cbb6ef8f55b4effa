import type { IncomingHttpHeaders } from 'node:http'
import { constants, createServer, type Http2Server, type Http2Session, type ServerHttp2Session, type ServerHttp2Stream, type ServerSessionOptions } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { Config } from '../config/load.ts'
import { KeyvaletError } from '../errors.ts'
import type { ForwardTarget } from './context.ts'
import type { Session } from '../model/session.ts'
import type { Handler } from './handler.ts'
import { RefusedStreams } from './h2-refused.ts'
import { H2HeaderInspector, type HeaderRefusal } from './h2/h2-header-inspector.ts'
import { inspectedSocket } from './h2/inspected-socket.ts'
import { H2Response, h2Request, type H2Request } from './h2/h2-exchange.ts'
import { expectationRefused } from './refusals.ts'

/** What an intercepted tunnel fixed at CONNECT time (forward-proxy.ts); every stream inside it is decided on its own. */
export interface Tunnel {
  readonly origin: string
  readonly authority: string
  readonly connect: string
  readonly key: string
  /** The session whose task key opened the tunnel (CONNECT's Proxy-Authorization): named by a stream refused before the pipeline authenticates it. */
  readonly session: Session
  /** Audits a refusal no stream of keyvalet's carries: the connection's (h2_protocol_violation, once) or streams nghttp2 refused (h2_stream_refused). */
  readonly violation: (error: KeyvaletError) => void
}

/** What the listener keeps of one connection. */
interface Connection {
  readonly tunnel: Tunnel
  readonly refused: RefusedStreams
  readonly inspector: H2HeaderInspector
  /** Counts a reset the client sent (watchSession's, once the session exists). */
  countReset: () => void
  /** Streams begun and not closed yet. */
  open: number
  /** Each of its streams' 'close' listener. */
  readonly streamClosed: () => void
}

/** A stream begun, waiting for the turn it is served on. */
interface Begun {
  readonly stream: ServerHttp2Stream
  readonly req: H2Request
  readonly connection: Connection
  readonly refusal: HeaderRefusal | undefined
}

/**
 * HTTP/2 inside intercepted tunnels whose TLS handshake chose `h2` by ALPN. Never bound to a port:
 * forward-proxy.ts hands it each such TLS socket. Each stream is adapted to the one request seam
 * (exchange.ts, on Node's core stream API: h2/h2-exchange.ts) and goes through the same pipeline
 * as an HTTP/1.1 request, with the same refusals and one audit record per stream.
 *
 * What differs from HTTP/1.1 is settled here and in the seam's shared code. nghttp2 resets a
 * stream whose header block breaks RFC 9113 §8.2-8.3 (upper-case names, connection-specific
 * fields, pseudo-headers unknown, repeated or after regular fields) or whose DATA disagrees with its
 * content-length, before any of it reaches keyvalet (such streams are audited all the same,
 * h2-refused.ts). A regular field nghttp2 would drop without a word (CR, LF, NUL or another
 * control character, whitespace at a value's ends, a name that is not a lower-case token: Node
 * ignores such fields and tells JavaScript nothing) is found by the header inspector, which reads
 * every byte the client sends before nghttp2 does (h2/h2-header-inspector.ts), and its stream is
 * refused 400 header_invalid. `:authority` stands for Host (route.ts);
 * pseudo-headers never go upstream (headers.ts). What one connection may cost is bounded by
 * `limits.h2_*` (h2Settings); a connection that goes over a bound is closed and audited once.
 */
export function createH2Listener(handler: Handler, limits: Config['limits']): { accept(socket: Duplex, tunnel: Tunnel): void; server: Http2Server } {
  const connections = new WeakMap<Http2Session, Connection>()
  const settings = h2Settings(limits)
  let accepting: Connection | undefined
  // No 'request' listener: Node's compatibility layer is never set up (h2/h2-exchange.ts stands in for it).
  const server = createServer(settings)
  // Every stream nghttp2 begins is told of (Node's 'stream', on a tick after the read that carried
  // its HEADERS): it is dressed at once (so that what nghttp2 reports in the same read, an error, a
  // reset or trailers, is heard), counted, and its header block's refusal taken from the inspector.
  // It is served on the next turn, once the rest of the frames read with its HEADERS are processed:
  // a stream the client already reset (rapid reset sends both together) is then dropped unbegun,
  // costing no decision, no upstream request and no record (it still counts against
  // h2_max_resets_per_minute). The streams begun before a turn are served by one callback, in order.
  let begun: Begun[] = []
  const serveBegun = (): void => {
    const streams = begun
    begun = []
    for (const { stream, req, connection, refusal } of streams) onStream(stream, req, connection, refusal)
  }
  // Node creates the session, and tells of it, synchronously inside 'connection' (accept below).
  server.on('session', (session: ServerHttp2Session) => {
    if (accepting === undefined) return void session.destroy()
    const connection = accepting
    connections.set(session, connection)
    connection.refused.attach(session)
    connection.countReset = watchSession(session, connection.tunnel, limits, connection.refused)
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const req = h2Request(stream, headers)
      connection.open++
      stream.on('close', connection.streamClosed)
      const id = stream.id ?? 0
      connection.refused.begun(id)
      if (begun.length === 0) setImmediate(serveBegun)
      begun.push({ stream, req, connection, refusal: connection.inspector.begin(id) })
    })
  })
  // A connection on which nothing moved for limits.idle_timeout_ms is closed (GOAWAY), as over
  // HTTP/1.1, once no stream is open on it. A stream on which nothing moved for as long is ended
  // alone, as an idle HTTP/1.1 request is: answered 504 idle_timeout while it still can be, reset
  // otherwise, audited idle_timeout either way (onStream).
  server.setTimeout(limits.idle_timeout_ms)
  server.on('timeout', (session: ServerHttp2Session) => {
    if ((connections.get(session)?.open ?? 0) === 0) session.close()
  })
  // The stream is what its request in the pipeline is known by (handler.ts).
  const expireIdle = function (this: ServerHttp2Stream): void { handler.expireIdle(this) }

  function onStream(stream: ServerHttp2Stream, req: H2Request, { tunnel }: Connection, headerRefusal: HeaderRefusal | undefined): void {
    const headers = req.headers
    const session = stream.session
    // A stream of a connection already closed for a violation (it came in the same read) is not served.
    if (session === undefined || session.destroyed) return void stream.close()
    if (stream.destroyed || stream.closed) return
    const res = new H2Response(stream, req)
    stream.setTimeout(limits.idle_timeout_ms, expireIdle)
    const target: ForwardTarget = { origin: tunnel.origin, authority: tunnel.authority, requestTarget: req.url ?? '', tunnel: tunnel.connect }
    const ctx = handler.newContext(req, { mode: 'forward', target, proxyKey: tunnel.key })
    const refusal = headerRefusal === undefined ? streamRefusal(headers) : undefined
    // Refused before the pipeline authenticates the stream: the record names the tunnel's session.
    if (headerRefusal !== undefined || refusal !== undefined) ctx.session = tunnel.session
    if (headerRefusal !== undefined) {
      void handler.reject(ctx, res, headerBlockRefusal(headerRefusal, tunnel))
      // No later stream of a connection whose header blocks keyvalet cannot follow is taken.
      if (headerRefusal.why === 'undecodable') session.close()
      return
    }
    if (refusal !== undefined) return void handler.reject(ctx, res, refusal)
    // Expect: 100-continue is answered at once, as node:http answers it (streamRefusal refuses any other).
    if (headers.expect !== undefined) stream.additionalHeaders({ ':status': 100 })
    void handler.request(ctx, res)
  }

  return {
    server,
    accept(socket, tunnel) {
      const refused = new RefusedStreams((streams, lastStream) => {
        tunnel.violation(new KeyvaletError('h2_stream_refused', { detail: { why: 'stream_refused', connect: tunnel.connect, streams, last_stream: lastStream } }))
      })
      // Before the session's own listeners: when the client ends the connection, its session can still be read.
      socket.once('end', refused.sample)
      socket.once('close', refused.sample)
      // Every byte the client sends is read by the inspector before nghttp2 has it (h2-header-inspector.ts).
      const inspector = new H2HeaderInspector({
        headerTableSize: settings.settings?.headerTableSize ?? 4096,
        maxFrameSize: settings.settings?.maxFrameSize ?? 16_384,
        maxHeaderListBytes: settings.settings?.maxHeaderListSize ?? limits.h2_max_header_list_bytes,
        maxHeaderListPairs: settings.maxHeaderListPairs ?? 128,
      }, () => connection.countReset())
      const connection: Connection = {
        tunnel, refused, inspector, countReset: () => {}, open: 0,
        streamClosed: () => { connection.open-- },
      }
      accepting = connection
      try {
        server.emit('connection', inspectedSocket(socket, (chunk) => inspector.inspect(chunk)))
      } finally {
        accepting = undefined
      }
    },
  }
}

/**
 * A connection's own bounds, beyond nghttp2's: streams the client resets (RST_STREAM; rapid reset
 * cancels each one after it cost a decision and an audit record) are counted per minute, and over
 * `h2_max_resets_per_minute` the connection is closed with GOAWAY ENHANCE_YOUR_CALM. A protocol
 * error of the session (nghttp2's limits: invalid frames, CONTINUATION floods, flow-control
 * violations, rejected streams) closes it too. Either is audited once, naming the task's session.
 * Returns what counts a reset: the header inspector calls it as it reads each RST_STREAM, before
 * nghttp2 has the frame. (Counting Node's 'aborted' events instead would count too late: nghttp2
 * is fed from JavaScript through the inspector, so those events wait until the whole chunk is
 * processed, and nghttp2's own backstop, streamResetBurst, would end the connection first.)
 */
function watchSession(session: ServerHttp2Session, tunnel: Tunnel, limits: Config['limits'], refused: RefusedStreams): () => void {
  let reported = false
  const report = (why: string, detail: Record<string, unknown>): void => {
    if (reported) return
    reported = true
    tunnel.violation(new KeyvaletError('h2_protocol_violation', { detail: { why, connect: tunnel.connect, ...detail } }))
  }
  // nghttp2's verdicts (ERR_HTTP2_*); a socket error (a client resetting the connection) is no violation.
  session.on('error', (err: Error & { code?: string }) => {
    if (err.code?.startsWith('ERR_HTTP2_') === true) report('session_error', { h2_error: err.code, message: err.message.slice(0, 160) })
  })
  // Streams refused by nghttp2 are found when a later one begins, at the idle timeout and at the connection's end (h2-refused.ts).
  session.prependListener('timeout', refused.sample)
  session.prependListener('goaway', refused.sample)
  let windowStart = Date.now()
  let resets = 0
  return () => {
    const now = Date.now()
    if (now - windowStart >= 60_000) {
      windowStart = now
      resets = 0
    }
    if (++resets <= limits.h2_max_resets_per_minute || session.destroyed) return
    report('rapid_reset', { resets_per_minute: limits.h2_max_resets_per_minute })
    session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM)
  }
}

/** The refusal of a stream whose header block the inspector found a field in that nghttp2 would have dropped. */
function headerBlockRefusal(refusal: HeaderRefusal, tunnel: Tunnel): KeyvaletError {
  if (refusal.why === 'undecodable') return new KeyvaletError('h2_protocol_violation', { detail: { why: 'header_block_undecodable', connect: tunnel.connect } })
  return new KeyvaletError('header_invalid', {
    message: 'An HTTP/2 request header field was refused: a name that is not a lower-case token, or a value with CR, LF, NUL or another control character, or with whitespace at either end.',
    detail: { why: refusal.why, ...(refusal.field === undefined ? {} : { header: refusal.field.slice(0, 100) }) },
  })
}

/**
 * What an HTTP/2 stream may not ask of an intercepted tunnel, beyond what nghttp2 refuses: CONNECT
 * (plain, or RFC 8441's extended CONNECT for WebSockets, which keyvalet does not advertise, so a
 * client falls back to an HTTP/1.1 upgrade), any scheme but https, and an Expect other than
 * 100-continue (refused as over HTTP/1.1).
 */
function streamRefusal(headers: IncomingHttpHeaders): KeyvaletError | undefined {
  if (headers[':method'] === 'CONNECT' || headers[':protocol'] !== undefined) {
    return new KeyvaletError('upgrade_refused', { message: 'CONNECT over HTTP/2 (RFC 8441 WebSockets included) is not taken inside an intercepted tunnel; open WebSockets over HTTP/1.1.', detail: { protocol: String(headers[':protocol'] ?? 'connect').slice(0, 40) } })
  }
  if (headers[':scheme'] !== 'https') return new KeyvaletError('request_malformed', { message: 'An HTTP/2 request inside an intercepted tunnel must have :scheme https.', detail: { scheme: String(headers[':scheme'] ?? '').slice(0, 40) } })
  if (headers.expect !== undefined && headers.expect.trim().toLowerCase() !== '100-continue') return expectationRefused()
  return undefined
}

/** The HTTP/2 session options of the intercepting listener, from `limits.h2_*`. */
export function h2Settings(limits: Config['limits']): ServerSessionOptions {
  return {
    settings: { enableConnectProtocol: false, maxHeaderListSize: limits.h2_max_header_list_bytes, maxConcurrentStreams: limits.h2_max_concurrent_streams },
    maxHeaderListPairs: 128,
    maxSessionMemory: limits.h2_max_session_memory_mb,
    maxSettings: 32,
    maxOutstandingPings: 10,
    maxSessionInvalidFrames: limits.h2_max_invalid_frames,
    maxSessionRejectedStreams: limits.h2_max_rejected_streams,
    // nghttp2's own rapid-reset bound (RST_STREAM received per connection), as a backstop to watchSession's.
    streamResetBurst: limits.h2_max_resets_per_minute,
    streamResetRate: Math.max(1, Math.ceil(limits.h2_max_resets_per_minute / 60)),
    unknownProtocolTimeout: limits.request_timeout_ms,
  }
}
