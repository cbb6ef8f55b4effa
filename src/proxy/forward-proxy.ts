import type { IncomingMessage, Server } from 'node:http'
import { createServer } from '../node-http.ts'
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import { classifyHost } from '../egress/ip-literal.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Session } from '../model/session.ts'
import type { LeafCache } from '../tls/leaf-cache.ts'
import { refusalFields } from './audit-fields.ts'
import type { ForwardTarget } from './context.ts'
import type { Handler } from './handler.ts'
import { proxyKeyFrom } from './stages/authenticate.ts'
import { normaliseAuthority } from './stages/route.ts'
import { createH2Listener, type Tunnel } from './h2-listener.ts'
import { openTunnel } from './tunnel.ts'
import { upgradeProtocol } from './websocket.ts'

export interface ForwardDeps {
  readonly handler: Handler
  readonly sessions: Sessions
  readonly leaves: LeafCache
}

/**
 * The forward-proxy listener (HTTPS_PROXY=http://task:KEY@keyvalet:PORT): absolute-form http://
 * requests and CONNECT. A CONNECT to a host a connector covers is intercepted — keyvalet answers
 * the TLS handshake with a leaf from its own CA, the SNI must be the CONNECT host, and each request
 * inside goes through the same pipeline as the gateway, with Host checked against the CONNECT
 * authority. The handshake takes `h2` or `http/1.1` by ALPN, as the client prefers; HTTP/2
 * streams go through the same pipeline (h2-listener.ts), `:authority` checked as Host is. A
 * CONNECT to a configured pass-through destination is tunnelled without interception and without
 * any credential. Every other CONNECT is refused before any byte reaches an upstream.
 */
export function createForwardServer(deps: ForwardDeps): Server {
  const { handler } = deps
  const tunnels = new WeakMap<Socket, Tunnel>()

  const outer = createServer(handler.serverOptions, (req, res) => {
    const target = absoluteTarget(req.url ?? '')
    const ctx = handler.newContext(req, { mode: 'forward', ...(target === undefined ? {} : { target }) })
    if (target === undefined) return void handler.reject(ctx, res, new KeyvaletError('proxy_request_invalid'))
    void handler.request(ctx, res)
  })
  handler.closeIdle(outer)
  outer.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // Node leaves a CONNECT socket without an error listener: a client resetting it mid-decision
    // must cost that socket, never the process.
    socket.on('error', () => socket.destroy())
    onConnect(req, socket, head).catch((err: unknown) => {
      handler.log.error('unhandled CONNECT failure', { error: String(err) })
      socket.destroy()
    })
  })
  outer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const target = absoluteTarget(req.url ?? '')
    const protocol = upgradeProtocol(req)
    if (target === undefined || protocol !== 'websocket') return handler.refuse(socket, new KeyvaletError(target === undefined ? 'proxy_request_invalid' : 'upgrade_refused'), { mode: 'forward', method: req.method ?? '' })
    void handler.upgrade(handler.newContext(req, { mode: 'forward', target, upgrade: protocol }), socket, head)
  })
  outer.on('clientError', handler.onClientError('forward'))
  outer.on('checkExpectation', handler.onUnsupportedExpectation('forward'))

  // Requests inside intercepted tunnels: parsed by a listener of their own, never bound to a port.
  const inner = createServer(handler.serverOptions, (req, res) => {
    const tunnel = tunnels.get(req.socket)
    if (tunnel === undefined) return void res.destroy()
    const target: ForwardTarget = { origin: tunnel.origin, authority: tunnel.authority, requestTarget: req.url ?? '', tunnel: tunnel.connect }
    void handler.request(handler.newContext(req, { mode: 'forward', target, proxyKey: tunnel.key }), res)
  })
  handler.closeIdle(inner)
  inner.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const tunnel = tunnels.get(socket)
    if (tunnel === undefined) return void socket.destroy()
    const protocol = upgradeProtocol(req)
    if (protocol !== 'websocket') return handler.refuse(socket, new KeyvaletError('upgrade_refused'), { mode: 'forward', method: req.method ?? '' })
    const target: ForwardTarget = { origin: tunnel.origin, authority: tunnel.authority, requestTarget: req.url ?? '', tunnel: tunnel.connect }
    void handler.upgrade(handler.newContext(req, { mode: 'forward', target, upgrade: protocol, proxyKey: tunnel.key }), socket, head)
  })
  inner.on('clientError', handler.onClientError('forward'))
  inner.on('checkExpectation', handler.onUnsupportedExpectation('forward'))
  const h2 = createH2Listener(handler, handler.generation().config.limits)

  async function onConnect(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const authority = parseAuthority(req.url ?? '')
    if (authority === undefined) return handler.refuse(socket, new KeyvaletError('proxy_request_invalid', { detail: { connect: String(req.url).slice(0, 300) } }), { mode: 'forward', method: 'CONNECT' })
    const refuse = (error: KeyvaletError, session?: Session): void =>
      handler.refuse(socket, error, { mode: 'forward', method: 'CONNECT', fields: { path: null, ...sessionFields(session), detail: { connect: authority.text, ...error.detail } } })
    let key: string
    let session: Session
    try {
      key = proxyKeyFrom(req.headers)
      session = await deps.sessions.authenticate(key)
    } catch (err) {
      return refuse(toKeyvaletError(err))
    }
    const port443 = authority.port === 443
    const host = port443 ? authority.host : `${authority.host}:${authority.port}`
    // Decided under the configuration in force now; each request inside an intercepted tunnel takes its own.
    const { intercepted, config } = handler.generation()
    if (intercepted.has(host)) return intercept(socket, head, authority, key, session)
    const tunnelAllow = config.tunnels.get(`${authority.host}:${authority.port}`)
    if (tunnelAllow !== undefined) {
      return openTunnel({ socket, head, host: authority.host, port: authority.port, connect: authority.text, session, handler, timeoutMs: config.limits.upstream_timeout_ms, allow: tunnelAllow })
    }
    refuse(new KeyvaletError('destination_refused', { detail: { connect: authority.text } }), session)
  }

  function intercept(socket: Socket, head: Buffer, authority: Authority, key: string, session: Session): void {
    // Minted only for hosts a connector covers (never for arbitrary SNI names: that would let a
    // sandbox make keyvalet mint certificates at will).
    const context = deps.leaves.secureContextFor(authority.host)
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: context,
      // The client's first choice of the two keyvalet speaks: HTTP/1.1 clients that also offer h2 (undici) keep HTTP/1.1.
      ALPNCallback: ({ protocols }) => protocols.find((p) => p === 'h2' || p === 'http/1.1'),
      SNICallback: (servername, done) => {
        if (servername.toLowerCase() === authority.host) return done(null, context)
        // Audited before the handshake is refused, like every other refusal.
        const error = new KeyvaletError('host_mismatch', { detail: { connect: authority.text, sni: servername.slice(0, 255) } })
        handler.record({ ...refusalFields(handler.nextId(), 'CONNECT', error), mode: 'forward', ...sessionFields(session) })
          .catch(() => {})
          .finally(() => done(new Error('SNI does not match the CONNECT host')))
      },
    })
    if (head.length > 0) socket.unshift(head)
    const origin = `https://${authority.port === 443 ? authority.host : `${authority.host}:${authority.port}`}`
    const violation = (error: KeyvaletError): void => {
      handler.record({ ...refusalFields(handler.nextId(), '', error), mode: 'forward', ...sessionFields(session) }).catch(() => {})
    }
    const tunnel: Tunnel = { origin, authority: normaliseAuthority(origin.slice('https://'.length), 443), connect: authority.text, key, session, violation }
    tls.once('error', () => tls.destroy())
    handler.tunnels.intercepted++
    tls.once('close', () => { handler.tunnels.intercepted-- })
    // The handshake must finish in the time a request head has to arrive; the protocol ALPN chose
    // then says which parser takes the connection.
    tls.setTimeout(handler.generation().config.limits.request_timeout_ms, () => tls.destroy())
    tls.once('secure', () => {
      tls.setTimeout(0)
      if (tls.alpnProtocol !== 'h2') {
        tunnels.set(tls, tunnel)
        return void inner.emit('connection', tls)
      }
      h2.accept(tls, tunnel)
    })
  }

  return outer
}

interface Authority {
  readonly host: string
  readonly port: number
  readonly text: string
}

/** CONNECT's authority-form `host:port`, strict: a valid name or canonical IP literal, a port. */
function parseAuthority(text: string): Authority | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/@]+)):(\d{1,5})$/.exec(text)
  if (match === null) return undefined
  const port = Number(match[3])
  if (port < 1 || port > 65535) return undefined
  const cls = classifyHost(match[1] ?? match[2] ?? '')
  if (cls.kind === 'refused') return undefined
  const host = cls.kind === 'name' ? cls.name : cls.family === 6 ? `[${cls.address}]` : cls.address
  return { host, port, text: text.slice(0, 300) }
}

/** An absolute-form http:// target, split without resolving anything in its path. */
function absoluteTarget(url: string): ForwardTarget | undefined {
  const match = /^http:\/\/([^/?#\s]+)(\/[^#]*|\?[^#]*)?$/i.exec(url)
  if (match === null) return undefined
  const authority = match[1] ?? ''
  if (authority.includes('@')) return undefined
  const hostPart = authority.replace(/:\d{1,5}$/, '')
  const cls = classifyHost(hostPart.replace(/^\[(.*)\]$/, '$1'))
  if (cls.kind === 'refused') return undefined
  const normalised = normaliseAuthority(authority, 80)
  const rest = match[2] ?? '/'
  return { origin: `http://${normalised}`, authority: normalised, requestTarget: rest.startsWith('?') ? `/${rest}` : rest }
}

function sessionFields(session: Session | undefined) {
  if (session === undefined) return {}
  return { session: session.id, agent: session.agent, user: session.user, workspace: session.workspace, task: session.task }
}
