/**
 * The typed client of the admin API (`import { adminClient } from 'keyvalet/admin-client'`), on
 * fetch. Its actions, inputs and outputs are types read from the route declarations
 * (routes/index.ts), so a route added there is callable here with no change to this file; at run
 * time it finds each action's method and path in the server's OpenAPI document, fetched once.
 *
 *   const admin = adminClient({ url: 'http://127.0.0.1:8790', token: process.env.KEYVALET_ADMIN_TOKEN })
 *   const { key, env } = await admin.call('session.create', { body: { agent, user, workspace, grant: ['github:read'] } })
 *
 * A refusal throws AdminApiError with the API's stable `code`. Imports nothing of the server.
 */
import type { Static, TSchema } from 'typebox'
import type { AdminRoute } from './route.ts'
import type { ROUTE_MODULES } from './routes/index.ts'

/** Where the server serves its OpenAPI document (admin/openapi.ts). */
export const OPENAPI_PATH = '/v1/openapi.json'

type Declared = ReturnType<(typeof ROUTE_MODULES)[number]>[number]
/** Every action the admin API declares, e.g. `session.create`. */
export type AdminAction = Declared['action']
type RouteOf<A extends AdminAction> = Extract<Declared, { readonly action: A }>
type Typed<S> = [S] extends [TSchema] ? Static<S> : never

/** What a call of `action` takes: `params` and `body` when the route has them, `query` when it has one. */
export type AdminInput<A extends AdminAction> = RouteOf<A> extends AdminRoute<infer P, infer Q, infer B>
  ? ([P] extends [TSchema] ? { readonly params: Static<P> } : { readonly params?: undefined })
    & ([Q] extends [TSchema] ? { readonly query?: Static<Q> } : { readonly query?: undefined })
    & ([B] extends [TSchema] ? { readonly body: Static<B> } : { readonly body?: undefined })
  : never

/** What a call of `action` answers: its declared response, else unknown. */
export type AdminOutput<A extends AdminAction> = RouteOf<A> extends { readonly response?: infer R } ? ([NonNullable<R>] extends [never] ? unknown : Typed<NonNullable<R>>) : unknown

type Optional<A extends AdminAction> = {} extends AdminInput<A> ? [input?: AdminInput<A>] : [input: AdminInput<A>]

export interface AdminClient {
  call<A extends AdminAction>(action: A, ...input: Optional<A>): Promise<AdminOutput<A>>
}

export interface AdminClientOptions {
  /** The admin listener, e.g. http://127.0.0.1:8790. */
  readonly url: string
  /** An admin token (kva_…). */
  readonly token: string
  readonly fetch?: typeof fetch
  /** Each call's timeout; default 30 s. */
  readonly timeoutMs?: number
}

/** A refusal or failure of the admin API: its HTTP status, stable code and request id. */
export class AdminApiError extends Error {
  readonly status: number
  readonly code: string
  readonly requestId: string | undefined
  constructor(status: number, code: string, message: string, requestId: string | undefined) {
    super(message)
    this.name = 'AdminApiError'
    this.status = status
    this.code = code
    this.requestId = requestId
  }
}

interface Operation {
  readonly method: string
  readonly path: string
}

export function adminClient(options: AdminClientOptions): AdminClient {
  const base = options.url.replace(/\/+$/, '')
  const send = options.fetch ?? fetch
  let operations: Promise<ReadonlyMap<string, Operation>> | undefined

  async function request(op: Operation, input: { params?: Record<string, unknown>; query?: Record<string, unknown>; body?: unknown }): Promise<unknown> {
    const path = op.path.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => encodeURIComponent(String(input.params?.[name] ?? '')))
    const query = new URLSearchParams()
    for (const [name, value] of Object.entries(input.query ?? {})) {
      for (const one of Array.isArray(value) ? value : [value]) if (one !== undefined) query.append(name, String(one))
    }
    const res = await send(`${base}${path}${query.size === 0 ? '' : `?${query}`}`, {
      method: op.method,
      headers: { authorization: `Bearer ${options.token}`, accept: 'application/json', ...(input.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(input.body === undefined ? {} : { body: JSON.stringify(input.body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    })
    const text = await res.text()
    const json = (res.headers.get('content-type') ?? '').startsWith('application/json') && text !== '' ? JSON.parse(text) as unknown : undefined
    if (res.ok) return json ?? text
    const error = (json as { error?: { code?: string; message?: string; request_id?: string } } | undefined)?.error
    throw new AdminApiError(res.status, error?.code ?? 'http_error', error?.message ?? `the admin API answered ${res.status}`, error?.request_id)
  }

  async function load(): Promise<ReadonlyMap<string, Operation>> {
    const document = await request({ method: 'GET', path: OPENAPI_PATH }, {}) as { paths?: Record<string, Record<string, { 'x-keyvalet-action'?: string }>> }
    const found = new Map<string, Operation>()
    for (const [path, methods] of Object.entries(document.paths ?? {})) {
      for (const [method, operation] of Object.entries(methods)) {
        const action = operation['x-keyvalet-action']
        if (action !== undefined) found.set(action, { method: method.toUpperCase(), path })
      }
    }
    return found
  }

  return {
    async call(action, ...[input]) {
      operations ??= load().catch((err: unknown) => {
        operations = undefined
        throw err
      })
      const op = (await operations).get(action)
      if (op === undefined) throw new AdminApiError(404, 'admin_route_unknown', `the admin API at ${base} has no action ${action}`, undefined)
      return await request(op, (input ?? {}) as never) as never
    },
  }
}
