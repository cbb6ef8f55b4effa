import { randomBytes } from 'node:crypto'
import type { Server, ServerOptions } from 'node:http'
import type { Duplex } from 'node:stream'
import type { SandboxRequest, SandboxResponse } from './exchange.ts'
import { Approvals } from '../approvals/approvals.ts'
import { CounterLeases } from '../budgets/leases.ts'
import type { AuditFields } from '../audit/record.ts'
import type { Config } from '../config/load.ts'
import { Resolver } from '../egress/resolver.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Store } from '../store/store.ts'
import type { Vault } from '../vault/vault.ts'
import { AssertionKeys } from '../assertion/keys.ts'
import { UserValues } from '../attribution/user-value.ts'
import { TokenHttp } from '../credentials/token-http.ts'
import { AnonymousAudit } from './anonymous-audit.ts'
import { composeStages, stagesFor, type Composition } from './compose.ts'
import { IdleConnections, serverOptions } from './connections.ts'
import type { AdmittedContext, ForwardTarget, OutboundContext, RequestContext } from './context.ts'
import { requestArrived, requestCarriesBody } from './headers.ts'
import { Generations, type Generation } from './generations.ts'
import { InFlight, type Flight } from './in-flight.ts'
import { admitted, runStageList, runStages } from './pipeline.ts'
import type { RequestObserver } from './observer.ts'
import { Recorder } from './recorder.ts'
import { createRefusals, type RefusalInit } from './refusals.ts'
import { RequestAudit, type AuditSink } from './request-audit.ts'
import { answerError, errorFormat, presentation, writeRawError } from './error-reply.ts'
import { relayResponse } from './respond.ts'
import { Sources } from './stages/credential.ts'
import { traceOf } from './trace.ts'
import { Upstreams } from './upstreams.ts'
import { openUpstreamSocket, relaySockets, type SocketRelay, WS_POLICY_VIOLATION } from './websocket.ts'
import { watchSocketBudget } from './ws-budget.ts'

export type { AuditSink }

export interface HandlerDeps {
  /** The configuration at start; `Handler.apply` puts another in force (config/reload.ts says what may change). */
  readonly config: Config
  readonly sessions: Sessions
  readonly vault: Vault
  /** The store, for stages that keep state of their own (e.g. a request budget's counter). */
  readonly store: Store
  readonly audit: AuditSink
  readonly log: Logger
  /** Epoch ms; tests move it to expire tokens. */
  readonly clock?: () => number
  /** Told of every request outcome (metrics, the operator log line); none by default. */
  readonly observers?: readonly RequestObserver[]
  /** Where requests that need a person's yes wait (src/approvals/); by default on `store`, for this handler alone. */
  readonly approvals?: Approvals
  /** This instance's leases of budget counters (src/budgets/leases.ts); by default on `store`, for this handler alone (never given back). */
  readonly leases?: CounterLeases
}

export interface ContextInit {
  readonly mode: RequestContext['mode']
  readonly target?: ForwardTarget
  readonly proxyKey?: string
  readonly upgrade?: string
}

/** What the listeners (gateway.ts, forward-proxy.ts, tunnel.ts) and shutdown (proxy.ts) use of the pipeline. */
export interface Handler {
  readonly log: Logger
  readonly resolver: Resolver
  readonly upstreams: Upstreams
  readonly sources: Sources
  readonly inFlight: InFlight
  /** CONNECT tunnels open now: passed through, or intercepted (the listeners count them; the metrics read them). */
  readonly tunnels: { passthrough: number; intercepted: number }
  /** The configuration in force, compiled: what a request starting now runs under. */
  generation(): Generation
  /** Puts a configuration in force for the requests that start from now on; those in flight finish under theirs. */
  apply(config: Config): void
  /** Node's http.Server options every listener shares. */
  readonly serverOptions: ServerOptions
  nextId(): string
  newContext(req: SandboxRequest, init: ContextInit): RequestContext
  /** Runs a request through the stages and relays the answer; audited and answered in every outcome. */
  request(ctx: RequestContext, res: SandboxResponse): Promise<void>
  /** Runs a WebSocket upgrade through the stages and relays the sockets; audited when it opens and when it ends. */
  upgrade(ctx: RequestContext, socket: Duplex, head: Buffer): Promise<void>
  /** Refuses a request before the stages: audited, then answered. */
  reject(ctx: RequestContext, res: SandboxResponse, error: KeyvaletError): Promise<void>
  /** Writes a record whose outcome needs no answer from the handler; fails with the reason it was not written. */
  record(fields: AuditFields): Promise<void>
  /** Refuses on a raw socket what never became a request: audited, then answered. */
  refuse(socket: Duplex, error: KeyvaletError, init: RefusalInit): void
  /** Closes a listener's connections on which nothing moved for limits.idle_timeout_ms. */
  closeIdle(server: Server): void
  /** An HTTP/2 stream (`socket`: its request's socket) on which nothing moved for limits.idle_timeout_ms: ended as an idle HTTP/1.1 connection is. */
  expireIdle(socket: Duplex): void
  onClientError(mode: RequestContext['mode']): (err: Error & { code?: string }, socket: Duplex) => void
  onUnsupportedExpectation(mode: RequestContext['mode']): (req: SandboxRequest, res: SandboxResponse) => void
  /** Writes what the anonymous budget still holds (at shutdown). */
  summarise(): Promise<void>
}

/**
 * The runner of the one request pipeline both listeners feed. Which stages run, in which order,
 * is compose.ts; this runs them: admission, the admit stages, the routed connector's stage list
 * (once more after a refused credential), then the relay — or, for a WebSocket upgrade, the
 * socket relay. Every outcome writes exactly one closing audit record before the sandbox has its
 * whole answer (Recorder.settle); streams and long requests also get an open record first
 * (request-audit.ts).
 */
export function createHandler(deps: HandlerDeps): Handler {
  const { config, log } = deps
  const clock = deps.clock ?? Date.now
  const resolver = new Resolver({ ...(config.dnsServers === undefined ? {} : { servers: config.dnsServers }) })
  const upstreams = new Upstreams({ headersTimeoutMs: config.limits.upstream_timeout_ms, resolver, upstreamProxy: config.upstreamProxy, vault: deps.vault })
  const sources = new Sources({ vault: deps.vault, clock, http: new TokenHttp({ resolver, upstreamProxy: config.upstreamProxy, vault: deps.vault }), log, locks: deps.store.locks })
  const assertionKeys = new AssertionKeys(deps.vault, clock)
  const userValues = new UserValues(deps.vault)
  const approvals = deps.approvals ?? new Approvals({ repo: deps.store.approvals, clock, log })
  const leases = deps.leases ?? new CounterLeases(deps.store.counters, clock)
  const generations = new Generations(config, {
    compose: (current) => composeStages({ config: current, sessions: deps.sessions, store: deps.store, audit: deps.audit, upstreams, sources, assertionKeys, userValues, approvals, leases, clock }),
    assertionKeys,
    release: (connector) => {
      upstreams.release(connector)
      sources.release(connector)
    },
  })
  const inFlight = new InFlight(config.auditOpenAfterMs)
  const openAfterNs = BigInt(config.auditOpenAfterMs) * 1_000_000n
  const idPrefix = randomBytes(4).toString('hex')
  let counter = 0
  const nextId = (): string => `req_${idPrefix}${(counter++).toString(36)}`
  const limits = { perSourcePerMinute: config.limits.anonymous_records_per_source_per_minute, totalPerMinute: config.limits.anonymous_records_per_minute }
  const anonymous = new AnonymousAudit({ sink: deps.audit, log, clock, nextId, limits })
  const recorder = new Recorder(deps.audit, anonymous, log, deps.observers)
  const idle = new IdleConnections(config.limits.idle_timeout_ms)

  function newContext(req: SandboxRequest, init: ContextInit): RequestContext {
    return { id: nextId(), req, started: process.hrtime.bigint(), trace: traceOf(req.headers.traceparent), bytesIn: 0, bytesOut: 0, redactions: 0, ...init }
  }

  /** The admit stages, then the routed connector's stages: what the request will send. */
  async function runPipeline(ctx: RequestContext, list: 'request' | 'upgrade', composition: Composition): Promise<OutboundContext> {
    await runStages(composition.admit, ctx)
    const admittedCtx = admitted(ctx)
    return runStageList(stagesFor(composition, admittedCtx.connector)[list], admittedCtx)
  }

  async function request(ctx: RequestContext, res: SandboxResponse): Promise<void> {
    if (!recorder.admit((error) => answerError(res, error, ctx.id, ctx.mode))) return
    // The configuration is taken once, now: the request is decided and finishes under it.
    const { generation, leave } = generations.enter()
    ctx.configVersion = generation.version
    const socket = ctx.req.socket
    // The sandbox leaving, or the connection going idle, aborts what the request started: one still
    // waiting for an upstream connection, or for the upstream's answer, is never sent (or is cut).
    // Shutdown and a failed open record cut it the same way, with their own reason. The abort's
    // reason is the request's outcome, whatever failure it then causes downstream.
    const gone = new AbortController()
    const endWhenIdle = (): void => {
      gone.abort(new KeyvaletError('idle_timeout', { detail: { idle_timeout_ms: config.limits.idle_timeout_ms } }))
      // Still owed an answer, with the whole request read (so waiting on the upstream, not the
      // sandbox): the pipeline answers 504 idle_timeout, the last answer on this connection.
      // Otherwise nothing more can move: the connection is cut.
      // (An HTTP/2 stream's answer ends only the stream; the session's own idle timeout closes the connection.)
      if (!res.headersSent && requestArrived(ctx.req)) {
        if (ctx.req.httpVersionMajor < 2) res.setHeader('connection', 'close')
      }
      else socket.destroy()
    }
    idle.busy(socket, endWhenIdle)
    res.once('close', () => {
      idle.free(socket, endWhenIdle)
      if (!res.writableFinished) gone.abort(new KeyvaletError('client_closed'))
    })
    const cut = (reason: KeyvaletError): void => gone.abort(reason)
    ctx.signal = gone.signal
    ctx.cut = cut
    const trail = new RequestAudit({ append: (fields) => recorder.append(fields, socket, ctx) }, ctx)
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
      const sent = await runPipeline(ctx, 'request', generation.composition)
      if (await retryAfter401(sent)) await runStageList(stagesFor(generation.composition, sent.connector).retry, sent)
      const upstream = sent.upstream
      if (upstream === undefined) throw new Error('forward produced no response')
      await relayResponse(ctx, res, upstream, async () => { await charge(ctx, generation.composition); await trail.close(undefined, status(undefined)) }, () => trail.open(upstream.statusCode))
    } catch (err) {
      const error = gone.signal.aborted ? toKeyvaletError(gone.signal.reason) : toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('request failed', { request_id: ctx.id, error: String(err) })
      await charge(ctx, generation.composition)
      await recorder.settle(ctx.id, () => trail.close(error, status(error)), () => answerError(res, error, ctx.id, ctx.mode, errorFormat(ctx), ctx.challenge))
    } finally {
      inFlight.untrack(flight)
      leave()
    }
  }

  /**
   * Charges what an exchange used (bytes, model tokens and cost) to the budgets it was admitted
   * against (those of the configuration the request started under), once, before its closing
   * record. A store failure here is logged: the exchange is over.
   */
  async function charge(ctx: RequestContext, composition: Composition): Promise<void> {
    const admission = ctx.budget
    if (admission === undefined || admission.charges.length === 0) return
    ctx.budget = undefined
    const spent = { bytes_up: ctx.bytesIn, bytes_down: ctx.bytesOut, tokens: (ctx.usage?.inputTokens ?? 0) + (ctx.usage?.outputTokens ?? 0), cost: ctx.usage?.cost ?? 0 }
    await composition.budgets.charge(admission, spent, clock()).catch((err: unknown) => log.error('budget charge failed', { request_id: ctx.id, error: String(err) }))
  }

  /**
   * The upstream refused the credential (401) and its source can get a fresh one: the request is
   * sent once more with it, when its body can be replayed (none, or held whole by decide); else
   * the 401 goes to the sandbox and the next request gets the fresh credential. The
   * first answer is discarded unseen. Never more than one retry.
   */
  async function retryAfter401(ctx: AdmittedContext): Promise<boolean> {
    const upstream = ctx.upstream
    const credential = ctx.credential
    if (upstream?.statusCode !== 401 || credential === undefined || ctx.retried === true) return false
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
   * either side closes, shutdown cuts it, or a byte budget it counts against runs out (closed
   * with 1008, ws-budget.ts).
   */
  async function upgrade(ctx: RequestContext, socket: Duplex, head: Buffer): Promise<void> {
    if (!recorder.admit((error) => writeRawError(socket, error, ctx.id, ctx.mode))) return
    const { generation, leave } = generations.enter()
    ctx.configVersion = generation.version
    const trail = new RequestAudit({ append: (fields) => recorder.append(fields, socket, ctx) }, ctx)
    try {
      const upstream = await openUpstreamSocket(await runPipeline(ctx, 'upgrade', generation.composition), upstreams)
      try {
        await trail.open(101)
      } catch (err) {
        upstream.socket.destroy()
        throw err
      }
      const flight: Flight = { cut: () => {} }
      let relay: SocketRelay | undefined
      const budget = watchSocketBudget(ctx, generation.composition.budgets, clock, log, (refusal) => relay?.close(refusal, WS_POLICY_VIOLATION))
      relay = relaySockets(ctx, socket, head, upstream, (cause) => {
        void budget.settle().then(() => recorder.settle(ctx.id, () => trail.close(cause, 101), () => {
          inFlight.untrack(flight)
          leave()
        }))
      })
      flight.cut = relay.cut
      inFlight.track(flight)
    } catch (err) {
      const error = toKeyvaletError(err)
      if (error.code === 'internal_error') log.error('upgrade failed', { request_id: ctx.id, error: String(err) })
      await recorder.settle(ctx.id, () => trail.close(error, presentation(ctx.mode, error).status), () => writeRawError(socket, error, ctx.id, ctx.mode, ctx.challenge))
      leave()
    }
  }

  const refusals = createRefusals({ recorder, anonymous, idle, nextId, newContext })

  return {
    log, resolver, upstreams, sources, inFlight, tunnels: { passthrough: 0, intercepted: 0 }, serverOptions: serverOptions(config.limits), nextId, newContext, request, upgrade, ...refusals,
    generation: () => generations.current,
    apply(next) {
      const generation = generations.apply(next)
      void upstreams.warm(generation.config.policy.connectors.values())
    },
    closeIdle: (server) => idle.watch(server),
    expireIdle: (socket) => idle.expire(socket),
    summarise: () => anonymous.summarise(),
  }
}

/** Whether the request can be sent again as it was: no body, or a body decide already holds whole. */
function replayable(ctx: RequestContext): boolean {
  return ctx.body !== undefined || !requestCarriesBody(ctx.req)
}
