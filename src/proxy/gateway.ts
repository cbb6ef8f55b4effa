import { randomBytes } from 'node:crypto'
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { AuditFields } from '../audit/record.ts'
import type { Config } from '../config/load.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Vault } from '../vault/vault.ts'
import type { RequestContext } from './context.ts'
import { runStages, type Stage } from './pipeline.ts'
import { ERROR_HEADER, relayResponse, renderError, REQUEST_ID_HEADER } from './respond.ts'
import { createAuthenticate } from './stages/authenticate.ts'
import { createCredential } from './stages/credential.ts'
import { createDecide } from './stages/decide.ts'
import { createForward } from './stages/forward.ts'
import { createInject } from './stages/inject.ts'
import { createRoute } from './stages/route.ts'
import { Upstreams } from './upstreams.ts'

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
  const stages: Stage[] = [
    createAuthenticate(deps.sessions),
    createRoute(config.policy),
    createDecide(config.limits.maxBodyInspectBytes),
    createCredential(deps.vault),
    createInject(),
    createForward(upstreams),
  ]
  const idPrefix = randomBytes(4).toString('hex')
  let counter = 0

  const busySockets = new WeakSet<Socket>()

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    busySockets.add(req.socket)
    res.once('close', () => busySockets.delete(req.socket))
    const ctx: RequestContext = {
      id: `req_${idPrefix}${(counter++).toString(36)}`, mode: 'gateway', req, res,
      started: process.hrtime.bigint(), bytesIn: 0, bytesOut: 0, redactions: 0,
    }
    let audited = false
    const audit = async (error: KeyvaletError | undefined): Promise<void> => {
      if (audited) return
      audited = true
      await deps.audit.append(auditFields(ctx, error))
    }
    try {
      await runStages(stages, ctx)
      const upstream = ctx.upstream
      if (upstream === undefined) throw new Error('forward produced no response')
      await relayResponse(ctx, upstream, () => audit(undefined))
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
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    refuseRaw(socket, new KeyvaletError('upgrade_refused'), (req.method ?? '').slice(0, 32))
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

  function refuseRaw(socket: Socket, error: KeyvaletError, method: string): void {
    const id = `req_${idPrefix}${(counter++).toString(36)}`
    const body = JSON.stringify({ error: { code: error.code, message: error.message, request_id: id } })
    deps.audit.append({
      request_id: id, mode: 'gateway', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
      method, path: null, query_keys: [], decision: 'deny', reason: error.code, rule: null, credential: null, status: error.status,
      upstream_status: null, error: error.code, bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 0, ...(error.detail === undefined ? {} : { detail: error.detail }),
    }).catch((err: unknown) => log.error('audit write failed', { request_id: id, error: String(err) }))
      // Answered once the record is written (or failed), like every other refusal.
      .finally(() => socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${ERROR_HEADER}: ${error.code}\r\n${REQUEST_ID_HEADER}: ${id}\r\nconnection: close\r\n\r\n${body}`))
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

function auditFields(ctx: RequestContext, error: KeyvaletError | undefined): AuditFields {
  const session = ctx.session
  const decision = ctx.decision
  const detail = error?.detail
  return {
    request_id: ctx.id,
    mode: ctx.mode,
    session: session?.id ?? null,
    agent: session?.agent ?? null,
    user: session?.user ?? null,
    workspace: session?.workspace ?? null,
    task: session?.task ?? null,
    connector: ctx.connector?.name ?? null,
    method: (ctx.req.method ?? '').slice(0, 32),
    path: ctx.path ?? null,
    query_keys: queryKeys(ctx.rawQuery),
    decision: error === undefined ? 'allow' : error.status >= 500 ? 'error' : 'deny',
    reason: decision !== undefined && decision.effect !== 'need_body' ? decision.reason : (error?.code ?? 'unknown'),
    rule: decision !== undefined && decision.effect !== 'need_body' ? (decision.rule?.id ?? null) : null,
    credential: ctx.credential?.secret ?? null,
    status: error === undefined ? (ctx.upstreamStatus ?? ctx.res.statusCode) : ctx.res.headersSent ? ctx.res.statusCode : error.status,
    upstream_status: ctx.upstreamStatus ?? null,
    error: error?.code ?? null,
    bytes_in: ctx.bytesIn,
    bytes_out: ctx.bytesOut,
    redactions: ctx.redactions,
    latency_ms: Number(process.hrtime.bigint() - ctx.started) / 1e6,
    ...(detail === undefined ? {} : { detail }),
  }
}

function queryKeys(rawQuery: string | undefined): string[] {
  if (rawQuery === undefined || rawQuery === '') return []
  return [...new Set(new URLSearchParams(rawQuery).keys())].map((k) => k.slice(0, 64)).slice(0, 50)
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
