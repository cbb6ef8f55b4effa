/** An approval as the admin API and the CLI show it (times as RFC 3339, absent values as null). */

import Type from 'typebox'
import type { Approval } from '../model/approval.ts'

const WHO = Type.Object({ id: Type.String(), name: Type.String() }, { description: 'The admin token, by id and name (never the token).' })
export const APPROVAL_VIEW = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('denied'), Type.Literal('expired'), Type.Literal('cancelled')]),
  request_id: Type.String({ description: "The parked request's id, as its audit record names it." }),
  session: Type.String(),
  agent: Type.String(),
  user: Type.String(),
  workspace: Type.String(),
  task: Type.String(),
  connector: Type.String(),
  rule: Type.String({ description: 'The rule that allowed the request and asks for approval.' }),
  method: Type.String(),
  host: Type.String({ description: 'The upstream host[:port] the request goes to.' }),
  path: Type.String({ description: 'Path and query as they will be sent.' }),
  summary: Type.String({ description: "The body as the rule's summary template renders it, or a bounded rendering with secret-looking fields redacted." }),
  digest: Type.String({ description: 'sha256: of the exact request that will be forwarded (docs/approvals.md says how it is computed).' }),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time', description: 'No decision is taken from then on; the request is refused (approval_timeout).' }),
  decided_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  approver: Type.Union([WHO, Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  remember_until: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'Until then, identical requests (same session, same digest) pass without asking.' }),
})

export function approvalView(a: Approval) {
  const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString())
  return {
    id: a.id, state: a.state, request_id: a.requestId, session: a.session, agent: a.agent, user: a.user, workspace: a.workspace, task: a.task,
    connector: a.connector, rule: a.rule, method: a.method, host: a.host, path: a.path, summary: a.summary, digest: a.digest,
    created_at: new Date(a.createdAt).toISOString(), expires_at: new Date(a.expiresAt).toISOString(), decided_at: iso(a.decidedAt),
    approver: a.approver ?? null, reason: a.reason ?? null, remember_until: iso(a.rememberUntil),
  }
}

