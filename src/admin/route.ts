/**
 * The admin API's one seam: every endpoint of the admin listener is an `AdminRoute`, declared in a
 * module under `routes/` and listed once in `routes/index.ts`. The server (admin/server.ts) reads
 * the declaration to authenticate the caller, check its role, validate params, query and body
 * against their typebox schemas (400 naming the field; unknown fields refused), write one audit
 * record per call, and answer; the OpenAPI document is generated from the same declarations.
 * A handler therefore never parses, authorises or audits: it gets typed, validated input.
 */
import type { ServerResponse } from 'node:http'
import type { Static, TSchema } from 'typebox'

import type { AdminRole } from '../model/admin-token.ts'

export { ADMIN_ROLES, type AdminRole } from '../model/admin-token.ts'

/** Who called, from their admin token (never the token itself). */
export interface Actor {
  readonly tokenId: string
  readonly name: string
  readonly role: AdminRole
}

/** What a handler answers. */
export type AdminReply =
  /** A JSON body; `status` defaults to 200. The body matches the route's `response` schema. */
  | { readonly kind: 'json'; readonly status?: number; readonly body: unknown }
  /** A text body (the Prometheus exposition, a health answer). */
  | { readonly kind: 'text'; readonly status?: number; readonly contentType: string; readonly body: string }
  /**
   * A long-lived answer (server-sent events): the handler owns `res` until `signal` aborts
   * (client gone or shutdown) and resolves when it has ended the response.
   */
  | { readonly kind: 'stream'; pipe(res: ServerResponse, signal: AbortSignal): Promise<void> }

/** The validated input of one call. */
export interface AdminCall<P, Q, B> {
  readonly params: P
  readonly query: Q
  readonly body: B
  /** Undefined only on a `public` route. */
  readonly actor: Actor | undefined
  readonly requestId: string
  /** Aborts when the client goes away or keyvalet shuts down. */
  readonly signal: AbortSignal
  /** Facts for this call's audit record (`target`, counts); never a secret value. */
  note(fields: Readonly<Record<string, unknown>>): void
}

type In<T extends TSchema | undefined> = T extends TSchema ? Static<T> : undefined

export interface AdminRoute<P extends TSchema | undefined = TSchema | undefined, Q extends TSchema | undefined = TSchema | undefined, B extends TSchema | undefined = TSchema | undefined> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** OpenAPI-style template, e.g. `/v1/sessions/{id}`. */
  readonly path: string
  /** Roles that may call it; `public` (no token) only for the health probes. */
  readonly roles: readonly AdminRole[] | 'public'
  /** The audit record's `action`, e.g. `session.create`; the OpenAPI operationId is derived from it. */
  readonly action: string
  readonly summary: string
  readonly params?: P
  readonly query?: Q
  readonly body?: B
  /** Schema of a `json` reply's body, for the OpenAPI document and the typed client. */
  readonly response?: TSchema
  handle(call: AdminCall<In<P>, In<Q>, In<B>>): Promise<AdminReply>
}

/**
 * Declares a route with its input types inferred from its schemas, and its method, action and
 * response schema kept as literal types: the typed client (admin/client.ts) reads them from
 * `ROUTE_MODULES`, so a module returns its routes as a tuple (`[defineRoute(…), …] as const`).
 */
export function defineRoute<
  const M extends AdminRoute['method'],
  const A extends string,
  P extends TSchema | undefined = undefined,
  Q extends TSchema | undefined = undefined,
  B extends TSchema | undefined = undefined,
  R extends TSchema | undefined = undefined,
>(route: AdminRoute<P, Q, B> & { readonly method: M; readonly action: A; readonly response?: R }): AdminRoute<P, Q, B> & { readonly method: M; readonly action: A; readonly response?: R } {
  return route
}
