import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { KeyvaletError } from '../errors.ts'
import type { OutboundContext, RequestContext } from './context.ts'
import { REQUEST_ID_HEADER } from './error-reply.ts'
import { maskHeaders, requestMask } from './request-mask.ts'
import { closeFrame, FrameBoundary } from './ws-frames.ts'
import type { Upstreams } from './upstreams.ts'

/** Response headers the 101 carries from the upstream (the rest of a 101 head is the handshake). */
const HANDSHAKE = new Set(['sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions'])

/**
 * After the request stages allowed an upgrade (a rule with `websocket: true`) and the credential
 * is on `ctx.outbound`: opens the upgraded connection to the upstream. A refusal by the upstream
 * (anything but 101) fails with upstream_response_invalid; nothing is relayed.
 */
export async function openUpstreamSocket(ctx: OutboundContext, upstreams: Upstreams): Promise<{ socket: Duplex; headers: OutgoingHttpHeaders }> {
  const { connector, outbound } = ctx
  const dispatcher = await upstreams.dispatcher(connector) // an egress refusal is thrown as it is
  try {
    // Agents (a corporate-proxy chain) need the origin; undici's type for upgrade omits it.
    const options = {
      origin: connector.upstream.origin,
      path: outbound.query === '' ? ctx.path : `${ctx.path}?${outbound.query}`,
      method: 'GET',
      headers: outbound.headers,
      protocol: 'websocket',
    } as Dispatcher.UpgradeOptions
    const upgraded = await dispatcher.upgrade(options)
    const headers: OutgoingHttpHeaders = {}
    for (const [name, value] of Object.entries(upgraded.headers)) if (HANDSHAKE.has(name) && value !== undefined) headers[name] = value
    ctx.redactions += maskHeaders(headers, requestMask(ctx))
    ctx.upstreamStatus = 101
    return { socket: upgraded.socket, headers }
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unknown'
    throw new KeyvaletError('upstream_response_invalid', { message: 'The upstream did not accept the WebSocket upgrade.', detail: { upstream_error: code }, cause: err })
  }
}

/** The close code a relay ended by keyvalet's policy (a budget used up) gives both sides (RFC 6455 §7.4.1: policy violation). */
export const WS_POLICY_VIOLATION = 1008

/** How long a side may take to finish the frame under way once the relay is being closed; then it is cut. */
const CLOSE_GRACE_MS = 2000

/** What runs a relay: the handler cuts it (shutdown) or closes it with a close code (a budget ran out). */
export interface SocketRelay {
  /** Destroys both sockets at once. */
  cut(reason: KeyvaletError): void
  /**
   * Ends the relay between frames: each side gets a close frame (`code`, the reason's code as its
   * text) once the frame it is receiving is complete, then its socket is ended; a side that has
   * not reached a frame's end within CLOSE_GRACE_MS is cut.
   */
  close(reason: KeyvaletError, code: number): void
}

/**
 * Sends the 101 to the sandbox and relays both ways until either side closes; counts the bytes,
 * and follows each direction's frame boundaries (ws-frames.ts) so that `close` can end it
 * cleanly. `onEnd` is called once, when the relay is over, with the reason it was cut or closed
 * by keyvalet (undefined when a side closed).
 */
export function relaySockets(ctx: RequestContext, client: Duplex, head: Buffer, upstream: { socket: Duplex; headers: OutgoingHttpHeaders }, onEnd: (cut: KeyvaletError | undefined) => void): SocketRelay {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'connection: Upgrade', 'upgrade: websocket', `${REQUEST_ID_HEADER}: ${ctx.id}`]
  for (const [name, value] of Object.entries(upstream.headers)) lines.push(`${name}: ${String(value)}`)
  client.write(`${lines.join('\r\n')}\r\n\r\n`)
  let ended = false
  let cutBy: KeyvaletError | undefined
  const closeBoth = (): void => {
    client.destroy()
    upstream.socket.destroy()
    if (ended) return
    ended = true
    onEnd(cutBy)
  }
  const up = new Direction(client, upstream.socket, true, (n) => { ctx.bytesIn += n })
  const down = new Direction(upstream.socket, client, false, (n) => { ctx.bytesOut += n })
  if (head.length > 0) up.forward(head)
  client.on('error', closeBoth).on('close', closeBoth)
  upstream.socket.on('error', closeBoth).on('close', closeBoth)
  if (client.destroyed || upstream.socket.destroyed) closeBoth() // a side that left before the relay began
  return {
    cut(reason) {
      cutBy ??= reason
      closeBoth()
    },
    close(reason, code) {
      if (ended || cutBy !== undefined) return
      cutBy = reason
      setTimeout(closeBoth, CLOSE_GRACE_MS).unref()
      up.close(code, reason.code)
      down.close(code, reason.code)
    },
  }
}

/** One direction of the relay: `from`'s bytes to `to`, with backpressure, frame by frame when closing. */
class Direction {
  readonly #frames = new FrameBoundary()
  readonly from: Duplex
  readonly to: Duplex
  /** Frames to `to` are masked: it is the upstream, and keyvalet speaks to it as the client. */
  readonly masked: boolean
  readonly count: (n: number) => void
  #closing: Buffer | undefined
  #done = false

  constructor(from: Duplex, to: Duplex, masked: boolean, count: (n: number) => void) {
    this.from = from
    this.to = to
    this.masked = masked
    this.count = count
    from.on('data', (chunk: Buffer) => this.forward(chunk))
    // A side that ends its half (FIN) ends the other's, as a pipe would.
    from.on('end', () => { if (!this.#done) to.end() })
    to.on('drain', () => from.resume())
  }

  forward(chunk: Buffer): void {
    if (this.#done) return
    if (this.#closing === undefined) {
      this.#frames.feed(chunk)
      this.count(chunk.length)
      if (!this.to.write(chunk)) this.from.pause()
      return
    }
    const n = this.#frames.feed(chunk, true)
    this.count(n)
    if (n > 0) this.to.write(chunk.subarray(0, n))
    if (this.#frames.atBoundary) this.#finish()
  }

  /** Sends a close frame to `to` once the frame under way is through (at once if none is). */
  close(code: number, reason: string): void {
    this.#closing = closeFrame(code, reason, this.masked)
    this.from.resume()
    if (this.#frames.atBoundary) this.#finish()
  }

  #finish(): void {
    if (this.#done || this.#closing === undefined) return
    this.#done = true
    this.to.end(this.#closing)
  }
}

/** The lower-case protocol a request asks to upgrade to. */
export function upgradeProtocol(req: IncomingMessage): string {
  return String(req.headers.upgrade ?? '').trim().toLowerCase()
}
