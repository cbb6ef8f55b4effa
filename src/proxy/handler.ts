import { randomBytes } from 'node:crypto'
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AuditFields } from '../audit/record.ts'
import type { Config } from '../config/load.ts'
import { Resolver } from '../egress/resolver.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Vault } from '../vault/vault.ts'
import { AnonymousAudit } from './anonymous-audit.ts'
import { auditFields, refusalFields } from './audit-fields.ts'
import { InFlight, type Flight } from './in-flight.ts'
import { RequestAudit, type AuditSink } from './request-audit.ts'
import type { ForwardTarget, RequestContext } from './context.ts'
import { runStages, type Stage } from './pipeline.ts'
import { errorFormat, presentation, relayResponse, renderError, writeRawError } from './respond.ts'
import { carriesBody } from './headers.ts'
import { AssertionKeys } from '../assertion/keys.ts'
import { UserValues } from '../attribution/user-value.ts'
import { createAssert } from './stages/assert.ts'
import { createCopySource } from './stages/copy-source.ts'
import { createAttribute, createAttributionHeader } from './stages/attribute.ts'
import { createAuditGate } from './stages/audit-gate.ts'
import { createAuthenticate } from './stages/authenticate.ts'
import { createCredential, Sources } from './stages/credential.ts'
import { TokenHttp } from '../credentials/token-http.ts'
import { createDecide } from './stages/decide.ts'
import { createForward } from './stages/forward.ts'
import { createInject } from './stages/inject.ts'
import { createRoute } from './stages/route.ts'
import { Upstreams } from './upstreams.ts'
import { openUpstreamSocket, relaySockets } from './websocket.ts'

export type { AuditSink }

export interface HandlerDeps {
  readonly config: Config
  readonly sessions: Sessions
  readonly vault: Vault
  readonly audit: AuditSink
  readonly log: Logger
  /** Epoch ms; tests move it to expire tokens. */
  readonly clock?: () => number
}

export interface ContextInit {
  readonly mode: RequestContext['mode']
  readonly target?: ForwardTarget
  readonly proxyKey?: string
  readonly upgrade?: string
}

/**
 * The one request pipeline both listeners feed: authenticate → route → decide → attribute →
 * credential → inject → assert → forward, then relay; or, for a WebSocket upgrade, the same stages up to inject and a
 * socket relay. Every outcome writes exactly one closing audit record before the sandbox has its
 * whole answer; streams and long requests also get an open record first (request-audit.ts).
 */
export function createHandler(deps: HandlerDeps) {
  const { config, log } = deps
  const resolver = new Resolver({ ...(config.dnsServers === undefined ? {} : { servers: config.dnsServers }) })
  const upstreams = new Upstreams({ headersTimeoutMs: config.limits.upstreamTimeoutMs, resolver, upstreamProxy: config.upstreamProxy, vault: deps.vault })
  const sources = new Sources({ vault: deps.vault, clock: deps.clock ?? Date.now, http: new TokenHttp({ resolver, upstreamProxy: config.upstreamProxy, vault: deps.vault }), log })
  const assertionKeys = new AssertionKeys(deps.vault, deps.clock ?? Date.now)
  const userValues = new UserValues(deps.vault)
  const credentialAndInject: Stage[] = [createCredential(sources), createInject(), createAssert(assertionKeys), createAttributionHeader(userValues)]
  const decideAndInject: Stage[] = [
    createAuthenticate(deps.sessions, config.policy),
    createRoute(config.policy),
    createDecide(config.limits.maxBodyInspectBytes),
    createCopySource(),
    createAttribute(userValues, config.limits.maxBodyInspectBytes),
    ...credentialAndInject,
  ]
  const forward = createForward(upstreams, config.policy, config.limits.upstreamTimeoutMs)
  const auditGate = createAuditGate(deps.audit)
  const stages: Stage[] = [...decideAndInject, auditGate, forward]
  const retryStages: Stage[] = [...credentialAndInject, auditGate, forward]
  const upgradeStages: Stage[] = [...decideAndInject, auditGate]
  const inFlight = new InFlight(config.auditOpenAfterMs)
  const openAfterNs = BigInt(config.auditOpenAfterMs) * 1_000_000n
  const idPrefix = randomBytes(4).toString('hex')
  let counter = 0
  const nextId = (): string => `req_${idPrefix}${(counter++).toString(36)}`
  const limits = { perSourcePerMinute: config.limits.anonymousRecordsPerSourcePerMinute, totalPerMinute: config.limits.anonymousRecordsPerMinute }
  const anonymous = new AnonymousAudit({ sink: deps.audit, log, clock: deps.clock ?? Date.now, nextId, limits })

  function newContext(req: IncomingMessage, init: ContextInit): RequestContext {
    return { id: nextId(), req, started: process.hrtime.bigint(), bytesIn: 0, bytesOut: 0, redactions: 0, ...init }
  }

  /** Sockets with a request in the pipeline → how that request ends when its connection goes idle: it answers and audits itself. */
  const busySockets = new WeakMap<object, () => void>()

  async function request(ctx: RequestContext, res: ServerResponse): Promise<void> {
    if (!deps.audit.admit()) {
      renderError(res, new KeyvaletError('audit_unavailable'), ctx.id, ctx.mode)
      return drain(ctx.req)
    }
    const socket = ctx.req.socket
    // The sandbox leaving, or the connection going idle, aborts what the request started: one still
    // waiting for an upstream connection, or for the upstream's answer, is never sent (or is cut).
    // Shutdown and a failed open record cut it the same way, with their own reason. The abort's
    // reason is the request's outcome, whatever failure it then causes downstream.
    const gone = new AbortController()
    const endWhenIdle = (): void => {
      gone.abort(new KeyvaletError('idle_timeout', { detail: { idle_timeout_ms: config.limits.idleTimeoutMs } }))
      // Still owed an answer, with the whole request read (so waiting on the upstream, not the
      // sandbox): the pipeline answers 504 idle_timeout, the last answer on this connection.
      // Otherwise nothing more can move: the connection is cut.
      if (!res.headersSent && ctx.req.complete) res.setHeader('connection', 'close')
      else socket.destroy()
    }
    busySockets.set(socket, endWhenIdle)
    res.once('close', () => {
      if (busySockets.get(socket) === endWhenIdle) busySockets.delete(socket)
      if (!res.writableFinished) gone.abort(new KeyvaletError('client_closed'))
    })
    ctx.signal = gone.signal
    const trail = new RequestAudit({ append: (fields) => append(fields, socket) }, ctx)
    const cut = (reason: KeyvaletError): void => gone.abort(reason)
    const flight: Flight = {
      cut,
      // A request that lasts gets its open record once its credential is attached (0: no answer yet).
      sweep: (now) => {
        if (trail.opening || trail.closed || ctx.outbound === undefined || now - ctx.started < openAfterNs) return
        trail.open(res.headersSent ? res.statusCode : 0).catch((err: unknown) => cut(toKeyvaletError(err)))
      },
    }
    inFlight.track(flight)
    const status = (error: KeyvaletError | undefined): number =>
      error === undefined ? (ctx.upstreamStatus ?? res.statusCode) : res.headersSent ? res.statusCode : presentation(ctx.mode, error).status
    try {
      await runStages(stages, ctx)
      if (await retryAfter401(ctx)) await runStages(retryStages, ctx)
      const upstream = ctx.upstream
      if (upstream === undefined) throw new Error('forward produced no response')
      await relayResponse(ctx, res, upstream, () => trail.close(undefined, status(undefined)), () => trail.open(upstream.statusCode))
    } catch (err) {
      const error = gone.signal.aborted ? toKeyvaletError(gone.signal.reason) : toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('request failed', { request_id: ctx.id, error: String(err) })
      try {
        await trail.close(error, status(error))
      } catch (auditErr) {
        log.error('audit write failed', { request_id: ctx.id, error: String(auditErr) })
      }
      if (!res.headersSent) {
        renderError(res, error, ctx.id, ctx.mode, errorFormat(ctx), ctx.challenge)
        drain(ctx.req)
      } else {
        res.destroy()
      }
    } finally {
      inFlight.untrack(flight)
    }
  }

  /**
   * The upstream refused the credential (401) and its source can get a fresh one: the request is
   * sent once more with it, when its body can be replayed (none, or held whole by decide); else
   * the 401 goes to the sandbox and the next request gets the fresh credential. The
   * first answer is discarded unseen. Never more than one retry.
   */
  async function retryAfter401(ctx: RequestContext): Promise<boolean> {
    const upstream = ctx.upstream
    const credential = ctx.credential
    if (upstream?.statusCode !== 401 || credential === undefined || ctx.retried === true || ctx.session === undefined || ctx.connector === undefined) return false
    // Told even when the body cannot be replayed, so the next request does not resend the refused token.
    const refreshable = credential.source.rejected?.({ session: ctx.session, connector: ctx.connector }, credential.token) === true
    if (!refreshable || !replayable(ctx)) return false
    await upstream.body.dump().catch(() => undefined)
    ctx.retried = true
    ctx.upstream = undefined
    return true
  }

  /**
   * A WebSocket upgrade: the same stages; when allowed, its open record is committed before the
   * 101, then the sockets are relayed, and the closing record (bytes, outcome) is written when
   * either side closes or shutdown cuts it.
   */
  async function upgrade(ctx: RequestContext, socket: Duplex, head: Buffer): Promise<void> {
    if (!deps.audit.admit()) return writeRawError(socket, new KeyvaletError('audit_unavailable'), ctx.id, ctx.mode)
    const trail = new RequestAudit({ append: (fields) => append(fields, socket) }, ctx)
    try {
      await runStages(upgradeStages, ctx)
      const upstream = await openUpstreamSocket(ctx, upstreams)
      try {
        await trail.open(101)
      } catch (err) {
        upstream.socket.destroy()
        throw err
      }
      const flight: Flight = { cut: () => {} }
      flight.cut = relaySockets(ctx, socket, head, upstream, (cause) => {
        trail.close(cause, 101)
          .catch((err: unknown) => log.error('audit write failed', { request_id: ctx.id, error: String(err) }))
          .finally(() => inFlight.untrack(flight))
      })
      inFlight.track(flight)
    } catch (err) {
      const error = toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('upgrade failed', { request_id: ctx.id, error: String(err) })
      await trail.close(error, presentation(ctx.mode, error).status)
        .catch((auditErr: unknown) => log.error('audit write failed', { request_id: ctx.id, error: String(auditErr) }))
      writeRawError(socket, error, ctx.id, ctx.mode, ctx.challenge)
    }
  }

  /** Refuses a request before the pipeline (e.g. not a proxy request): audited, then answered. */
  async function reject(ctx: RequestContext, res: ServerResponse, error: KeyvaletError): Promise<void> {
    if (!deps.audit.admit()) {
      renderError(res, new KeyvaletError('audit_unavailable'), ctx.id, ctx.mode)
      return drain(ctx.req)
    }
    await append(auditFields(ctx, error, presentation(ctx.mode, error).status), ctx.req.socket)
      .catch((err: unknown) => log.error('audit write failed', { request_id: ctx.id, error: String(err) }))
    renderError(res, error, ctx.id, ctx.mode)
    drain(ctx.req)
  }

  /** Writes a record, naming its session, whose outcome needs no answer from here (a tunnel opened, a handshake refused). */
  function record(fields: AuditFields): Promise<void> {
    if (!deps.audit.admit()) return Promise.reject(new KeyvaletError('audit_unavailable'))
    return deps.audit.append(fields).then(
      () => undefined,
      (err: unknown) => {
        log.error('audit write failed', { request_id: fields.request_id, error: String(err) })
        throw err
      },
    )
  }

  /** A refusal before any stage ran (parser errors, CONNECT decisions): audited first, then answered on the raw socket. */
  function refuse(socket: Duplex, error: KeyvaletError, init: { mode: RequestContext['mode']; method: string; fields?: Partial<AuditFields> }): void {
    const id = nextId()
    if (!deps.audit.admit()) return writeRawError(socket, new KeyvaletError('audit_unavailable'), id, init.mode)
    const fields = { ...refusalFields(id, init.method, error), mode: init.mode, status: presentation(init.mode, error).status, ...init.fields }
    append(fields, socket)
      .catch((err: unknown) => log.error('audit write failed', { request_id: id, error: String(err) }))
      .finally(() => writeRawError(socket, error, id, init.mode))
  }

  /**
   * Closes a listener's connections on which nothing moved for `limits.idle_timeout_ms`. With this
   * listener, node leaves timed-out sockets to keyvalet: an idle one is closed; one with a request
   * in the pipeline is ended by that request (answered 504 idle_timeout when it still can, cut
   * otherwise; audited idle_timeout either way), never reset unexplained.
   */
  function closeIdle(server: Server): void {
    server.timeout = config.limits.idleTimeoutMs
    server.on('timeout', (socket: Duplex) => {
      const endRequest = busySockets.get(socket)
      if (endRequest === undefined) socket.destroy()
      else endRequest()
    })
  }

  /** The one way request records are written: an anonymous one (no session) within its budget. */
  function append(fields: AuditFields, socket: Duplex | null): Promise<number | undefined> {
    // A request's socket is gone (null) once Node detached it, e.g. after an aborted upload.
    return anonymous.append(fields, fields.session === null ? (socket as Socket | null)?.remoteAddress : undefined)
  }

  /** Node's http.Server options every listener shares. */
  const serverOptions: ServerOptions = {
    // The head must arrive in time (slow-header clients); a body may take as long as it keeps
    // moving, which the idle timeout bounds. Node's requestTimeout would cut long uploads.
    requestTimeout: 0,
    headersTimeout: config.limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.limits.requestTimeoutMs / 4))),
    keepAliveTimeout: 5_000,
    maxHeaderSize: 32 * 1024,
    insecureHTTPParser: false,
    requireHostHeader: true,
  }

  /**
   * A listener's `clientError`: the parser refused what arrived (CL+TE smuggling, bad chunking,
   * oversized or slow headers). Answered and audited once per socket, however many chunks keep
   * arriving (Node reports the error again for each), unless a request of that socket is already
   * in the pipeline (it answers and audits itself; only the socket goes). The socket is cut
   * shortly after the answer, so a client that keeps sending cannot hold it.
   */
  const refusedSockets = new WeakSet<object>()
  function onClientError(mode: RequestContext['mode']) {
    return (err: Error & { code?: string }, socket: Duplex): void => {
      if (refusedSockets.has(socket)) return
      if (err.code === 'ECONNRESET' || !socket.writable || busySockets.has(socket)) return void socket.destroy()
      refusedSockets.add(socket)
      setTimeout(() => socket.destroy(), REFUSED_SOCKET_LINGER_MS).unref()
      const error = parserError(err)
      if (error.code === 'request_timeout' && (socket as Socket).bytesRead === 0) {
        // A connection that never sent a byte is no request: counted for the summary, never chained.
        anonymous.idleConnection()
        return writeRawError(socket, error, nextId(), mode)
      }
      refuse(socket, error, { mode, method: '' })
    }
  }

  /**
   * A listener's `checkExpectation`: an Expect other than 100-continue (which node:http answers
   * itself). Left alone, node:http would answer 417 with no audit record; refused here instead.
   */
  function onUnsupportedExpectation(mode: RequestContext['mode']) {
    return (req: IncomingMessage, res: ServerResponse): void => {
      const message = 'The Expect header asks for something keyvalet does not do (only 100-continue); the request was refused.'
      void reject(newContext(req, { mode }), res, new KeyvaletError('header_invalid', { message, detail: { header: 'expect' } }))
    }
  }

  function parserError(err: Error & { code?: string }): KeyvaletError {
    const detail = { parser: err.code ?? 'unknown' }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new KeyvaletError('request_timeout', { detail })
    if (err.code === 'HPE_HEADER_OVERFLOW') return new KeyvaletError('request_malformed', { message: 'The request headers are too large.', detail })
    return new KeyvaletError('request_malformed', { detail })
  }

  /** The JWKS is published only when some connector signs assertions. */
  const jwks = [...config.policy.connectors.values()].some((c) => c.assertion !== undefined) ? assertionKeys : undefined

  return { upstreams, sources, resolver, jwks, inFlight, newContext, request, upgrade, reject, record, refuse, serverOptions, closeIdle, onClientError, onUnsupportedExpectation, log, nextId, summarise: () => anonymous.summarise() }
}

export type Handler = ReturnType<typeof createHandler>

/** How long a socket whose bytes the parser refused stays open: long enough to read the answer, which is written once audited. */
const REFUSED_SOCKET_LINGER_MS = 10_000

/** Whether the request can be sent again as it was: no body, or a body decide already holds whole. */
function replayable(ctx: RequestContext): boolean {
  return ctx.body !== undefined || !carriesBody(ctx.req.headers)
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
