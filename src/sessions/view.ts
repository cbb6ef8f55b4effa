import Type, { type Static } from 'typebox'
import type { Session } from '../model/session.ts'
import { formatGrant } from '../policy/grant.ts'

const TIME = Type.String({ format: 'date-time' })

/** A session as listings and the admin API show it (never its key or key hash). */
export const SESSION_VIEW = Type.Object({
  id: Type.String({ description: 'The session id (ses_…); never the task key.' }),
  state: Type.Union([Type.Literal('active'), Type.Literal('revoked'), Type.Literal('expired')]),
  agent: Type.String(),
  user: Type.String(),
  workspace: Type.String(),
  task: Type.String(),
  grants: Type.Array(Type.String(), { description: 'connector:severity[:rule,…][+approval[=DURATION]]' }),
  created_at: TIME,
  expires_at: TIME,
  revoked_at: Type.Union([TIME, Type.Null()]),
  budget: Type.Union([Type.Integer(), Type.Null()], { description: 'The most requests the session may have forwarded, when it was given a budget of its own.' }),
}, { additionalProperties: false })
export type SessionView = Static<typeof SESSION_VIEW>

/** One limit of a budget that applies to the session: how much is used and left (src/budgets/budgets.ts BudgetUse). */
export const BUDGET_USE = Type.Object({
  budget: Type.String({ description: 'The budget\'s name in the config (`budgets.<name>`), or `session` for the session\'s own.' }),
  metric: Type.Enum(['requests', 'bytes_up', 'bytes_down', 'tokens', 'cost'], { description: 'What it counts; cost in millionths of the price currency.' }),
  per: Type.String({ description: 'Whose use counts together: session, agent, user or workspace (`this session` for its own budget).' }),
  connector: Type.Union([Type.String(), Type.Null()]),
  rule: Type.Union([Type.String(), Type.Null()]),
  used: Type.Number(),
  limit: Type.Number(),
  left: Type.Number(),
  resets_at: Type.Union([TIME, Type.Null()], { description: 'When the window ends; null for a budget over the session\'s life.' }),
}, { additionalProperties: false })

/** A session with what it has used and has left of every budget that applies to it (`session show`, GET /v1/sessions/{id}). */
export const SESSION_DETAIL = Type.Object({ ...SESSION_VIEW.properties, budgets: Type.Array(BUDGET_USE) }, { additionalProperties: false })
export type SessionDetail = Static<typeof SESSION_DETAIL>

export function sessionView(s: Session, now: number): SessionView {
  const state = s.revokedAt !== undefined ? 'revoked' : now >= s.expiresAt ? 'expired' : 'active'
  return {
    id: s.id, state, agent: s.agent, user: s.user, workspace: s.workspace, task: s.task, grants: s.grants.map(formatGrant),
    created_at: new Date(s.createdAt).toISOString(), expires_at: new Date(s.expiresAt).toISOString(),
    revoked_at: s.revokedAt === undefined ? null : new Date(s.revokedAt).toISOString(),
    budget: s.budget ?? null,
  }
}
