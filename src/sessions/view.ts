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
  grants: Type.Array(Type.String(), { description: 'connector:severity[:rule,…]' }),
  created_at: TIME,
  expires_at: TIME,
  revoked_at: Type.Union([TIME, Type.Null()]),
}, { additionalProperties: false })
export type SessionView = Static<typeof SESSION_VIEW>

export function sessionView(s: Session, now: number): SessionView {
  const state = s.revokedAt !== undefined ? 'revoked' : now >= s.expiresAt ? 'expired' : 'active'
  return {
    id: s.id, state, agent: s.agent, user: s.user, workspace: s.workspace, task: s.task, grants: s.grants.map(formatGrant),
    created_at: new Date(s.createdAt).toISOString(), expires_at: new Date(s.expiresAt).toISOString(),
    revoked_at: s.revokedAt === undefined ? null : new Date(s.revokedAt).toISOString(),
  }
}
