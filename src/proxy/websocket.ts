import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { KeyvaletError } from '../errors.ts'
import type { OutboundContext, RequestContext } from './context.ts'
import { REQUEST_ID_HEADER } from './error-reply.ts'
import { maskHeaders, requestMask } from './request-mask.ts'
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

/**
 * Sends the 101 to the sandbox and relays both ways until either side closes; counts the bytes.
 * `onEnd` is called once, when the relay is over, with the reason it was cut (undefined when a
 * side closed). Returns the function that cuts it.
 */
export function relaySockets(ctx: RequestContext, client: Duplex, head: Buffer, upstream: { socket: Duplex; headers: OutgoingHttpHeaders }, onEnd: (cut: KeyvaletError | undefined) => void): (reason: KeyvaletError) => void {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'connection: Upgrade', 'upgrade: websocket', `${REQUEST_ID_HEADER}: ${ctx.id}`]
  for (const [name, value] of Object.entries(upstream.headers)) lines.push(`${name}: ${String(value)}`)
  client.write(`${lines.join('\r\n')}\r\n\r\n`)
  if (head.length > 0) upstream.socket.write(head)
  let ended = false
  let cutBy: KeyvaletError | undefined
  const closeBoth = (): void => {
    client.destroy()
    upstream.socket.destroy()
    if (ended) return
    ended = true
    onEnd(cutBy)
  }
  client.on('data', (c: Buffer) => { ctx.bytesIn += c.length }).on('error', closeBoth).on('close', closeBoth)
  upstream.socket.on('data', (c: Buffer) => { ctx.bytesOut += c.length }).on('error', closeBoth).on('close', closeBoth)
  client.pipe(upstream.socket)
  upstream.socket.pipe(client)
  if (client.destroyed || upstream.socket.destroyed) closeBoth() // a side that left before the relay began
  return (reason) => {
    cutBy ??= reason
    closeBoth()
  }
}

/** The lower-case protocol a request asks to upgrade to. */
export function upgradeProtocol(req: IncomingMessage): string {
  return String(req.headers.upgrade ?? '').trim().toLowerCase()
}
