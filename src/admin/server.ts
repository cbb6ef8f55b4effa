/**
 * The admin listener: serves the routes of ROUTE_MODULES (routes/index.ts) from their declarations.
 * For each call, in order: find the route (unknown paths and methods are answered only after a
 * valid token, so that a caller without one learns nothing but 401); unless the route is public,
 * refuse an address that sent too many bad tokens (throttle.ts), authenticate the bearer admin
 * token, check the role; check params, query and body against the route's schemas (input.ts);
 * run the handler; write the call's one audit record (mode 'admin', with actor, action and
 * target), and only then answer. A call is refused (audit_unavailable) before anything is done
 * when the audit log cannot take its record. Errors use the data plane's JSON error document.
 * The web console's files (/console, console/static.ts) are answered before all this: they are
 * public, hold nothing secret, and the console then calls these routes with the admin token.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from '../node-http.ts'
import type { AuditFields } from '../audit/record.ts'
import { KeyvaletError, OperatorError, toKeyvaletError } from '../errors.ts'
import { ERROR_HEADER, errorBody, REQUEST_ID_HEADER } from '../proxy/error-reply.ts'
import { consoleFiles } from './console/static.ts'
import type { AdminDeps } from './deps.ts'
import { openApiRoute } from './openapi.ts'
import { compileInput, decodeParam, queryObject, readJsonBody } from './input.ts'
import type { Actor, AdminReply, AdminRoute } from './route.ts'
import { ROUTE_MODULES } from './routes/index.ts'
import { BadTokenThrottle, type ThrottleOptions } from './throttle.ts'

/** Largest request body the admin API reads (a secret value is at most 64 KiB). */
export const MAX_ADMIN_BODY_BYTES = 256 * 1024

export interface AdminServer {
  /** Opens the listener at config().admin; resolves with its http://host:port. */
  listen(): Promise<{ url: string }>
  /** Stops taking calls, aborts streams, and closes every connection. */
  close(): Promise<void>
}

interface CompiledRoute {
  readonly route: AdminRoute
  readonly pattern: RegExp
  readonly names: readonly string[]
  readonly params: (v: unknown) => unknown
  readonly query: (v: unknown) => unknown
  readonly body: (v: unknown) => unknown
}

export function createAdminServer(deps: AdminDeps, opts: { readonly throttle?: ThrottleOptions } = {}): AdminServer {
  const declared: readonly AdminRoute[] = ROUTE_MODULES.flatMap((module): readonly AdminRoute[] => module(deps))
  const all: readonly AdminRoute[] = [...declared, openApiRoute((): readonly AdminRoute[] => all)]
  const routes = all.map(compileRoute)
  const throttle = new BadTokenThrottle(deps.clock, opts.throttle)
  const shutdown = new AbortController()
  const idPrefix = randomBytes(4).toString('hex')
  let counter = 0
  const consoleAssets = consoleFiles()
  const server: Server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    // The HTTP parser lets through targets that are no URL (`GET http://[`): serve answers those 400.
    const target = URL.parse(req.url ?? '/', 'http://admin.invalid') ?? undefined
    if (target !== undefined && consoleAssets.owns(target.pathname)) return consoleAssets.serve(req, res, target.pathname)
    void serve(req, res, `adm_${idPrefix}${(counter++).toString(36)}`, target)
  })

  async function serve(req: IncomingMessage, res: ServerResponse, requestId: string, target: URL | undefined): Promise<void> {
    const started = performance.now()
    const url = target ?? new URL('http://admin.invalid/')
    const method = (req.method ?? '').slice(0, 32)
    const address = req.socket.remoteAddress ?? 'unknown'
    const record: { actor: AuditFields['actor']; action: string | null; target: Record<string, unknown>; bytesIn: number } = { actor: null, action: null, target: {}, bytesIn: 0 }
    const gone = new AbortController()
    const onShutdown = (): void => gone.abort()
    shutdown.signal.addEventListener('abort', onShutdown)
    res.once('close', () => {
      gone.abort()
      shutdown.signal.removeEventListener('abort', onShutdown)
    })
    // The health probes (the only public routes) are neither audited nor refused when the audit
    // cannot write: a kubelet asks every few seconds, and /readyz must then say what is failing.
    const matched = routes.filter((r) => r.pattern.test(url.pathname))
    const found = matched.find((r) => r.route.method === method)
    const probe = found?.route.roles === 'public'
    const audit = (status: number, error: KeyvaletError | undefined, bytesOut: number): Promise<number> => probe ? Promise.resolve(0) : deps.audit.append({
      request_id: requestId, mode: 'admin', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
      method, path: (target === undefined ? req.url ?? '' : url.pathname).slice(0, 512), query_keys: [...new Set(url.searchParams.keys())].map((k) => k.slice(0, 64)).slice(0, 50),
      decision: error === undefined ? 'allow' : status >= 500 ? 'error' : 'deny', reason: error?.code ?? 'admin_role_allows', rule: null, credential: null,
      status, upstream_status: null, error: error?.code ?? null, bytes_in: record.bytesIn, bytes_out: bytesOut, redactions: 0,
      latency_ms: Math.round(performance.now() - started), ...(error?.detail === undefined ? {} : { detail: error.detail }),
      actor: record.actor, action: record.action, ...(Object.keys(record.target).length === 0 ? {} : { target: record.target }),
    })
    try {
      if (!probe && !deps.audit.admit()) throw new KeyvaletError('audit_unavailable')
      if (target === undefined) throw new KeyvaletError('admin_request_invalid', { message: 'The request target is not a path.' })
      let actor: Actor | undefined
      if (found?.route.roles !== 'public') {
        actor = await authenticate(req, address)
        record.actor = { id: actor.tokenId, name: actor.name }
      }
      if (found === undefined) {
        if (matched.length === 0) throw new KeyvaletError('admin_route_unknown')
        res.setHeader('allow', matched.map((r) => r.route.method).join(', '))
        throw new KeyvaletError('admin_method_refused')
      }
      const { route } = found
      record.action = route.action
      if (actor !== undefined && route.roles !== 'public' && !route.roles.includes(actor.role)) {
        throw new KeyvaletError('admin_role_forbidden', { detail: { role: actor.role, allowed: route.roles } })
      }
      const groups = found.pattern.exec(url.pathname)?.slice(1) ?? []
      const params = found.params(Object.fromEntries(found.names.map((name, i) => [name, decodeParam(name, groups[i] ?? '')])))
      const query = found.query(queryObject(url.searchParams, route.query))
      const read = await readJsonBody(req, MAX_ADMIN_BODY_BYTES)
      record.bytesIn = read.bytes
      if (route.body === undefined && read.value !== undefined) throw new KeyvaletError('admin_request_invalid', { message: 'this route takes no body' })
      const body = route.body === undefined ? undefined : found.body(read.value ?? {})
      const reply = await route.handle({
        params, query, body, actor, requestId, signal: gone.signal,
        note: (fields) => void Object.assign(record.target, fields),
      } as Parameters<AdminRoute['handle']>[0]).catch((err: unknown) => {
        // An OperatorError says why the request cannot be carried out as asked, for the operator calling.
        throw err instanceof OperatorError ? new KeyvaletError('admin_request_invalid', { message: err.message, cause: err }) : err
      })
      await answer(res, reply, requestId, gone.signal, audit)
    } catch (err) {
      const error = toKeyvaletError(err)
      if (error.code === 'internal_error') deps.log.error('admin call failed', { request_id: requestId, error: String(err) })
      const body = errorBody(error, requestId)
      if (error.code !== 'audit_unavailable') {
        const written = await audit(error.status, error, Buffer.byteLength(body)).then(() => true, (e: unknown) => {
          deps.log.error('admin audit record failed', { request_id: requestId, error: String(e) })
          return false
        })
        if (!written) return renderError(req, res, new KeyvaletError('audit_unavailable'), requestId)
      }
      if (error.code === 'admin_token_throttled' && typeof error.detail?.retry_after_s === 'number') res.setHeader('retry-after', String(error.detail.retry_after_s))
      renderError(req, res, error, requestId)
    }
  }

  async function authenticate(req: IncomingMessage, address: string): Promise<Actor> {
    const header = req.headers.authorization
    if (header === undefined || header === '') throw new KeyvaletError('admin_token_missing')
    const wait = throttle.retryAfterMs(address)
    if (wait > 0) throw new KeyvaletError('admin_token_throttled', { detail: { retry_after_s: Math.ceil(wait / 1000) } })
    const match = /^Bearer +(\S+) *$/i.exec(header)
    try {
      if (match === null) throw new KeyvaletError('admin_token_invalid', { message: 'The admin token must be sent as Authorization: Bearer kva_...' })
      const actor = await deps.adminTokens.authenticate(match[1] as string)
      throttle.succeeded(address)
      return actor
    } catch (err) {
      if (err instanceof KeyvaletError && err.status === 401) throttle.failed(address)
      throw err
    }
  }

  return {
    async listen() {
      const at = deps.config().admin
      if (at === undefined) throw new OperatorError('no admin listener is configured', 'set listen.admin, e.g. 127.0.0.1:8790')
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new OperatorError(`the admin API cannot listen on ${at.host}:${at.port}: ${err.message}`, 'choose another listen.admin, or stop what holds it', { cause: err })))
        server.listen(at.port, at.host, () => resolve())
      })
      const bound = server.address()
      if (bound === null || typeof bound === 'string') throw new Error('admin listener has no address')
      return { url: `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` }
    },
    async close() {
      shutdown.abort()
      if (!server.listening) return
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      setTimeout(() => server.closeAllConnections(), 2000).unref()
      await closed
    },
  }
}

/** Writes a handler's reply once its audit record is committed. */
async function answer(res: ServerResponse, reply: AdminReply, requestId: string, signal: AbortSignal, audit: (status: number, error: undefined, bytesOut: number) => Promise<number>): Promise<void> {
  if (reply.kind === 'stream') {
    await audit(200, undefined, 0)
    res.setHeader(REQUEST_ID_HEADER, requestId)
    return reply.pipe(res, signal)
  }
  const status = reply.status ?? 200
  const [type, text] = reply.kind === 'json' ? ['application/json; charset=utf-8', JSON.stringify(reply.body)] : [reply.contentType, reply.body]
  await audit(status, undefined, Buffer.byteLength(text))
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', [REQUEST_ID_HEADER]: requestId })
  res.end(text)
}

function renderError(req: IncomingMessage, res: ServerResponse, err: KeyvaletError, requestId: string): void {
  if (res.headersSent) return void res.destroy()
  const body = errorBody(err, requestId)
  res.writeHead(err.status, {
    'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store',
    [ERROR_HEADER]: err.code, [REQUEST_ID_HEADER]: requestId,
    // A body left unread (too large, or refused before reading) ends the connection: it cannot be reused.
    ...(req.complete ? {} : { connection: 'close' }),
  })
  res.end(body)
}

/** `/v1/sessions/{id}` → a regex with one group per parameter, and their names. */
function compileRoute(route: AdminRoute): CompiledRoute {
  const names: string[] = []
  const source = route.path.split('/').map((segment) => {
    const param = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment)
    if (param === null) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    names.push(param[1] as string)
    return '([^/]+)'
  }).join('/')
  return {
    route, names, pattern: new RegExp(`^${source}$`),
    params: compileInput('params', route.params), query: compileInput('query', route.query), body: compileInput('body', route.body),
  }
}
