import Type from 'typebox'
import { durationMs, DURATION_PATTERN } from '../../duration.ts'
import { KeyvaletError } from '../../errors.ts'
import { ADMIN_ROLES, type AdminToken } from '../../model/admin-token.ts'
import type { AdminDeps } from '../deps.ts'
import { defineRoute } from '../route.ts'

const TIME = Type.String({ format: 'date-time' })
const TOKEN_VIEW = Type.Object({
  id: Type.String({ description: 'The token id (kat_…); never the token.' }),
  name: Type.String(),
  role: Type.Union(ADMIN_ROLES.map((role) => Type.Literal(role))),
  state: Type.Union([Type.Literal('active'), Type.Literal('revoked'), Type.Literal('expired')]),
  created_at: TIME,
  expires_at: Type.Union([TIME, Type.Null()]),
  revoked_at: Type.Union([TIME, Type.Null()]),
}, { additionalProperties: false })
const ID = Type.Object({ id: Type.String({ pattern: '^kat_[0-9a-f]{16}$', description: 'An admin token id (kat_…).' }) })
const ROLES = ['admin'] as const

/** Admin tokens over the admin API, for the admin role: list (never a value), mint (the value once), revoke. */
export function adminTokenRoutes(deps: AdminDeps) {
  const view = (t: AdminToken) => {
    const now = deps.clock()
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())
    const state = t.revokedAt !== undefined ? 'revoked' as const : t.expiresAt !== undefined && now >= t.expiresAt ? 'expired' as const : 'active' as const
    return { id: t.id, name: t.name, role: t.role, state, created_at: new Date(t.createdAt).toISOString(), expires_at: iso(t.expiresAt), revoked_at: iso(t.revokedAt) }
  }
  return [
    defineRoute({
      method: 'GET', path: '/v1/whoami', roles: ADMIN_ROLES, action: 'admin_token.whoami',
      response: Type.Object({ id: Type.String(), name: Type.String(), role: Type.Union(ADMIN_ROLES.map((role) => Type.Literal(role))) }, { additionalProperties: false }),
      summary: "The calling admin token's id, name and role (the console logs in with it); never its value.",
      async handle({ actor }) {
        if (actor === undefined) throw new KeyvaletError('admin_token_missing')
        return { kind: 'json', body: { id: actor.tokenId, name: actor.name, role: actor.role } }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/admin-tokens', roles: ROLES, action: 'admin_token.list', response: Type.Object({ tokens: Type.Array(TOKEN_VIEW) }),
      summary: 'Every admin token with its role and state; never a token value.',
      async handle() {
        return { kind: 'json', body: { tokens: (await deps.adminTokens.list()).map(view) } }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/admin-tokens', roles: ROLES, action: 'admin_token.create',
      body: Type.Object({
        name: Type.String({ description: 'What the token is for (1-64 visible ASCII characters, no spaces).' }),
        role: Type.Union(ADMIN_ROLES.map((role) => Type.Literal(role))),
        ttl: Type.Optional(Type.String({ pattern: DURATION_PATTERN, description: 'How long it lasts (90s, 30m, 1h, 90d); none: until revoked.' })),
      }),
      response: Type.Object({ token: TOKEN_VIEW, value: Type.String({ description: 'The admin token (kva_…), shown this once: it is stored only as a digest.' }) }),
      summary: 'Mint an admin token; its value is returned once.',
      async handle({ body, note }) {
        const ttlMs = body.ttl === undefined ? undefined : durationMs(body.ttl)
        const { token, value } = await deps.adminTokens.create({ name: body.name, role: body.role, ...(ttlMs === undefined ? {} : { ttlMs }) })
        note({ admin_token: token.id, name: token.name, role: token.role })
        return { kind: 'json', status: 201, body: { token: view(token), value } }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/admin-tokens/{id}/revoke', roles: ROLES, action: 'admin_token.revoke', params: ID, response: TOKEN_VIEW,
      summary: 'Revoke an admin token at once (it may be the caller\'s own). Revoking again keeps the first time.',
      async handle({ params, note }) {
        note({ admin_token: params.id })
        if (!(await deps.adminTokens.revoke(params.id))) throw new KeyvaletError('admin_not_found', { message: `No admin token ${params.id}.` })
        const token = (await deps.adminTokens.list()).find((t) => t.id === params.id)
        if (token === undefined) throw new KeyvaletError('admin_not_found', { message: `No admin token ${params.id}.` })
        return { kind: 'json', body: view(token) }
      },
    }),
  ] as const
}
