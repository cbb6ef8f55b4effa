import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { AuditFields } from '../audit/record.ts'
import type { Config } from '../config/load.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Vault } from '../vault/vault.ts'
import type { RequestContext } from './context.ts'
import { runStages, type Stage } from './pipeline.ts'
import { auditFields, refusalFields } from './audit-fields.ts'
import { relayResponse, renderError, writeRawError } from './respond.ts'
import { createAuthenticate } from './stages/authenticate.ts'
import { createCredential } from './stages/credential.ts'
import { createDecide } from './stages/decide.ts'
import { createForward } from './stages/forward.ts'
import { createInject } from './stages/inject.ts'
import { createRoute } from './stages/route.ts'
import { Upstreams } from './upstreams.ts'
import { openUpstreamSocket, relaySockets, upgradeProtocol } from './websocket.ts'

/** Where audit records go; written exactly once per request, before the response completes. */
export interface AuditSink {
  append(fields: AuditFields): Promise<unknown>
}

export interface GatewayDeps {
  readonly config: Config
  readonly sessions: Sessions
  readonly vault: Vault
  readonly audit: AuditSink
  readonly log: Logger
}

export interface Gateway {
  listen(): Promise<{ host: string; port: number; url: string }>
  close(graceMs?: number): Promise<void>
}

/**
 * The gateway listener: `http://keyvalet:PORT/<connector>/<path>` with the task key where the real
 * credential would go. Every request runs authenticate → route → decide → credential → inject →
 * forward, then the response is relayed; one audit record is written in every outcome.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { config, log } = deps
  const upstreams = new Upstreams(config.policy, { headersTimeoutMs: config.limits.upstreamTimeoutMs })
  // Everything up to and including inject; a request then goes to forward, an upgrade to websocket.ts.
  const decideAndInject: Stage[] = [
    createAuthenticate(deps.sessions),
    createRoute(config.policy),
    createDecide(config.limits.maxBodyInspectBytes),
    createCredential(deps.vault),
    createInject(),
  ]
  const stages: Stage[] = [...decideAndInject, createForward(upstreams)]
  const idPrefix = randomBytes(4).toString('hex')
  let counter = 0

  const busySockets = new WeakSet<Socket>()

  const nextId = (): string => `req_${idPrefix}${(counter++).toString(36)}`
  const newContext = (req: IncomingMessage, upgrade?: string): RequestContext => ({
    id: nextId(), mode: 'gateway', req, started: process.hrtime.bigint(), bytesIn: 0, bytesOut: 0, redactions: 0,
    ...(upgrade === undefined ? {} : { upgrade }),
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    busySockets.add(req.socket)
    res.once('close', () => busySockets.delete(req.socket))
    const ctx = newContext(req)
    let audited = false
    const audit = async (error: KeyvaletError | undefined): Promise<void> => {
      if (audited) return
      audited = true
      const status = error === undefined ? (ctx.upstreamStatus ?? res.statusCode) : res.headersSent ? res.statusCode : error.status
      await deps.audit.append(auditFields(ctx, error, status))
    }
    try {
      await runStages(stages, ctx)
      const upstream = ctx.upstream
      if (upstream === undefined) throw new Error('forward produced no response')
      await relayResponse(ctx, res, upstream, () => audit(undefined))
    } catch (err) {
      const error = toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('request failed', { request_id: ctx.id, error: String(err) })
      try {
        await audit(error)
      } catch (auditErr) {
        log.error('audit write failed', { request_id: ctx.id, error: String(auditErr) })
      }
      if (!res.headersSent) {
        renderError(res, error, ctx.id)
        drain(req)
      } else {
        res.destroy()
      }
    }
  }

  /** A WebSocket upgrade runs the same stages, is audited when it is allowed, then relayed. */
  async function handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const protocol = upgradeProtocol(req)
    if (protocol !== 'websocket') return refuseRaw(socket, new KeyvaletError('upgrade_refused', { detail: { protocol: protocol.slice(0, 40) } }), req.method ?? '')
    const ctx = newContext(req, protocol)
    try {
      await runStages(decideAndInject, ctx)
      const upstream = await openUpstreamSocket(ctx, upstreams)
      try {
        await deps.audit.append(auditFields(ctx, undefined, 101))
      } catch (err) {
        upstream.socket.destroy()
        throw err
      }
      relaySockets(ctx, socket, head, upstream)
    } catch (err) {
      const error = toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('upgrade failed', { request_id: ctx.id, error: String(err) })
      await deps.audit.append(auditFields(ctx, error, error.status)).catch((auditErr: unknown) => log.error('audit write failed', { request_id: ctx.id, error: String(auditErr) }))
      writeRawError(socket, error, ctx.id)
    }
  }

  const server: Server = createServer({
    // The head must arrive in time (slow-header clients); a body may take as long as it keeps
    // moving, which the idle timeout below bounds. Node's requestTimeout would cut long uploads.
    requestTimeout: 0,
    headersTimeout: config.limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.limits.requestTimeoutMs / 4))),
    keepAliveTimeout: 5_000,
    maxHeaderSize: 32 * 1024,
    insecureHTTPParser: false,
    requireHostHeader: true,
  }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error('unhandled request failure', { error: String(err) })
      res.destroy()
    })
  })
  server.timeout = config.limits.idleTimeoutMs
  // The gateway is not a forward proxy: CONNECT gets a clear refusal instead of a closed socket.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    refuseRaw(socket, new KeyvaletError('method_refused', { message: 'CONNECT is not accepted on the gateway listener.' }), 'CONNECT')
  })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    handleUpgrade(req, socket, head).catch((err: unknown) => {
      log.error('unhandled upgrade failure', { error: String(err) })
      socket.destroy()
    })
  })
  // Requests the parser rejects (CL+TE smuggling, bad chunking, oversized headers) never become
  // requests; they are still answered with a clear error and audited.
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    // A request already in the pipeline answers and audits itself; only its socket goes.
    if (err.code === 'ECONNRESET' || !socket.writable || busySockets.has(socket)) return void socket.destroy()
    const detail = { parser: err.code ?? 'unknown' }
    const error = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new KeyvaletError('request_timeout', { detail })
      : err.code === 'HPE_HEADER_OVERFLOW' ? new KeyvaletError('request_malformed', { message: 'The request headers are too large.', detail })
      : new KeyvaletError('request_malformed', { detail })
    refuseRaw(socket, error, '')
  })

  /** Refusals before any stage: audited first, then answered on the raw socket. */
  function refuseRaw(socket: Socket, error: KeyvaletError, method: string): void {
    const id = nextId()
    deps.audit.append(refusalFields(id, method, error))
      .catch((err: unknown) => log.error('audit write failed', { request_id: id, error: String(err) }))
      .finally(() => writeRawError(socket, error, id))
  }

  return {
    listen: () => new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.gateway.port, config.gateway.host, () => {
        const address = server.address()
        if (address === null || typeof address === 'string') return reject(new Error('gateway has no address'))
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
        resolve({ host: address.address, port: address.port, url: `http://${host}:${address.port}` })
      })
    }),
    /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts what is left (long streams). */
    close: async (graceMs = 10_000) => {
      const cut = setTimeout(() => server.closeAllConnections(), graceMs)
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
      clearTimeout(cut)
      await upstreams.destroy()
    },
  }
}

/** Let a refused request's body be read off the socket so keep-alive survives, but bounded. */
function drain(req: IncomingMessage): void {
  if (req.complete) return
  let seen = 0
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length
    if (seen > 1024 * 1024) req.destroy()
  })
  req.resume()
}
