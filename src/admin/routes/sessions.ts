import Type from 'typebox'
import { sandboxEnv } from '../../sessions/sandbox-env.ts'
import { KeyvaletError } from '../../errors.ts'
import type { SessionFilter } from '../../model/session.ts'
import { FIELD_SPELLING, readSessionOptions, SESSION_REQUEST_SCHEMA, type SessionOptionValues } from '../../sessions/options.ts'
import { BUDGET_USE, SESSION_DETAIL, SESSION_VIEW, sessionView } from '../../sessions/view.ts'
import { Budgets } from '../../budgets/budgets.ts'
import type { SessionCursor } from '../../store/store.ts'
import type { AdminDeps } from '../deps.ts'
import { invalid } from '../input.ts'
import { defineRoute } from '../route.ts'

const ID = Type.Object({ id: Type.String({ pattern: '^ses_[0-9a-f]{16}$', description: 'A session id (ses_…).' }) })
const FILTER_FIELDS = {
  agent: Type.Optional(Type.String({ minLength: 1 })),
  user: Type.Optional(Type.String({ minLength: 1 })),
  workspace: Type.Optional(Type.String({ minLength: 1 })),
  task: Type.Optional(Type.String({ minLength: 1 })),
}
const CREATE = Type.Unsafe<SessionOptionValues & { ca_file?: string }>({
  ...SESSION_REQUEST_SCHEMA,
  properties: {
    ...SESSION_REQUEST_SCHEMA.properties,
    ca_file: { type: 'string', minLength: 1, description: 'Where the sandbox finds the CA bundle (keyvalet ca bundle), for the trust variables of `env`. Default ./keyvalet-ca-bundle.pem.' },
  },
})
const ENV_LINE = Type.Union([Type.Object({ name: Type.String(), value: Type.String() }), Type.Object({ comment: Type.String() })])
const CREATED = Type.Object({
  session: SESSION_VIEW,
  key: Type.String({ description: 'The task key (kvt_…), shown this once: it is stored only as a hash.' }),
  env: Type.Array(ENV_LINE, { description: 'The sandbox environment, as `keyvalet session create --env` prints it: proxy variables, CA bundle, placeholders, or gateway base URLs.' }),
})
const LISTED = Type.Object({
  ...SESSION_VIEW.properties,
  budgets: Type.Optional(Type.Array(BUDGET_USE, { description: 'With budgets=true, on a live session: what it has used and has left of every budget that applies to it, as GET /v1/sessions/{id} shows.' })),
}, { additionalProperties: false })
const PAGE = Type.Object({ sessions: Type.Array(LISTED), next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last.' }) })
const ROLES = ['admin', 'operator'] as const

/** Task sessions over the admin API: mint, list, get, revoke one, revoke in bulk. */
export function sessionRoutes(deps: AdminDeps) {
  const found = async (id: string) => {
    const session = await deps.sessions.get(id)
    if (session === undefined) throw new KeyvaletError('admin_not_found', { message: `No session ${id}.` })
    return session
  }
  return [
    defineRoute({
      method: 'POST', path: '/v1/sessions', roles: ROLES, action: 'session.create', body: CREATE, response: CREATED,
      summary: 'Mint a task key for one agent session; the key is returned once, with the environment the sandbox needs.',
      async handle({ body, note }) {
        const { ca_file: caFile, ...options } = body
        const config = deps.config()
        const { session, key } = await deps.sessions.create(readSessionOptions(options, config.policy, FIELD_SPELLING))
        note({ session: session.id, agent: session.agent, user: session.user, workspace: session.workspace, task: session.task })
        const bound = { ...config, gateway: hostPort(deps.listening.gateway), forward: deps.listening.forward === undefined ? undefined : hostPort(deps.listening.forward) }
        return { kind: 'json', status: 201, body: { session: sessionView(session, deps.clock()), key, env: sandboxEnv(bound, key, caFile) } }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/sessions', roles: ROLES, action: 'session.list', response: PAGE,
      summary: 'List sessions, oldest first, filtered by agent, user, workspace and task, a page at a time.',
      query: Type.Object({
        ...FILTER_FIELDS,
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Sessions per page; default 100.' })),
        cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page.' })),
        budgets: Type.Optional(Type.Boolean({ description: 'true: each live session also carries its budget use (`budgets`), in this one call.' })),
      }),
      async handle({ query }) {
        const { limit = 100, cursor, budgets: withBudgets = false, ...filter } = query
        const page = await deps.store.sessions.page(filter, cursor === undefined ? undefined : readCursor(cursor), limit + 1)
        const shown = page.slice(0, limit)
        const last = shown.at(-1)
        const now = deps.clock()
        // A revoked or expired session can spend nothing more: only live ones carry their use.
        const budgets = new Budgets(deps.store.counters, deps.config().budgets, deps.leases)
        const sessions = await Promise.all(shown.map(async (s) => {
          const view = sessionView(s, now)
          return withBudgets && view.state === 'active' ? { ...view, budgets: await budgets.report(s, now) } : view
        }))
        return { kind: 'json', body: { sessions, next_cursor: page.length > limit && last !== undefined ? writeCursor(last) : null } }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/sessions/{id}', roles: ROLES, action: 'session.get', params: ID, response: SESSION_DETAIL,
      summary: 'One session, its state, and what it has used and has left of every budget that applies to it.',
      async handle({ params, note }) {
        note({ session: params.id })
        const session = await found(params.id)
        const now = deps.clock()
        return { kind: 'json', body: { ...sessionView(session, now), budgets: await new Budgets(deps.store.counters, deps.config().budgets, deps.leases).report(session, now) } }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/sessions/{id}/revoke', roles: ROLES, action: 'session.revoke', params: ID, response: SESSION_VIEW,
      summary: 'Revoke a session at once: the next request with its key is refused. Revoking again keeps the first time.',
      async handle({ params, note }) {
        note({ session: params.id })
        if (!(await deps.sessions.revoke(params.id))) await found(params.id)
        return { kind: 'json', body: sessionView(await found(params.id), deps.clock()) }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/sessions/revoke', roles: ROLES, action: 'session.revoke_many',
      body: Type.Object(FILTER_FIELDS, { minProperties: 1 }),
      response: Type.Object({ revoked: Type.Array(Type.String(), { description: 'Ids of the sessions this call revoked.' }) }),
      summary: 'Revoke every live session of an agent, user, workspace or task (at least one of them; all given must match).',
      async handle({ body, note }) {
        const filter: SessionFilter = body
        const revoked = await deps.store.sessions.revokeMatching(filter, deps.clock())
        note({ filter, revoked: revoked.slice(0, 100), count: revoked.length })
        return { kind: 'json', body: { revoked } }
      },
    }),
  ] as const
}

function hostPort(url: string): { host: string; port: number } {
  const { hostname, port } = new URL(url)
  return { host: hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(port) }
}

function writeCursor(s: { readonly createdAt: number; readonly id: string }): string {
  return Buffer.from(JSON.stringify([s.createdAt, s.id])).toString('base64url')
}

function readCursor(text: string): SessionCursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[]
    if (Number.isSafeInteger(createdAt) && typeof id === 'string') return { createdAt: createdAt as number, id }
  } catch {
    // answered below
  }
  throw invalid('query.cursor is not a cursor this API gave')
}
