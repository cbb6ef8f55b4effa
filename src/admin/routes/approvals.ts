import Type from 'typebox'
import { safeText } from '../../approvals/summary.ts'
import type { Approval } from '../../model/approval.ts'
import { APPROVAL_VIEW, approvalView } from '../../approvals/view.ts'
import type { AdminDeps } from '../deps.ts'
import { KeyvaletError } from '../../errors.ts'
import { defineRoute, type Actor } from '../route.ts'

/** Who may decide: the roles that manage sessions, and approvers, who may do nothing else (model/admin-token.ts). */
const ROLES = ['admin', 'operator', 'approver'] as const
const ID = Type.Object({ id: Type.String({ pattern: '^apr_[0-9a-f]{16}$', description: 'An approval id (apr_…).' }) })
const LIST_LIMIT = 500
/** The longest a long poll waits for a new pending approval. */
const MAX_WAIT_S = 60
/** Between two reads of the store in a long poll, unless a request parks on this instance first. */
const LONG_POLL_STEP_MS = 250
const REASON_LIMIT = 500
const LIST = Type.Object({ approvals: Type.Array(APPROVAL_VIEW, { description: 'Pending approvals, oldest first.' }) })

/** Requests parked for a person's yes (src/approvals/): list, follow, read one, approve, deny. */
export function approvalRoutes(deps: AdminDeps) {
  const approver = (actor: Actor | undefined) => {
    if (actor === undefined) throw new Error('an approval route ran without a caller')
    return { id: actor.tokenId, name: actor.name }
  }
  // What the admin call's own record says of the decision: the request's who and what, and the digest.
  const noteDecision = (note: (f: Record<string, unknown>) => void, a: Approval, waitedMs: number) =>
    note({
      approval: a.id, decision: a.state, reason: a.reason ?? null, digest: a.digest, wait_ms: waitedMs, request_id: a.requestId,
      requester: { session: a.session, agent: a.agent, user: a.user, workspace: a.workspace, task: a.task }, connector: a.connector, method: a.method, host: a.host,
    })
  return [
    defineRoute({
      method: 'GET', path: '/v1/approvals', roles: ROLES, action: 'approval.list', response: LIST,
      summary: 'Pending approvals, oldest first. With `wait`, a long poll: when none was created after `after`, waits up to `wait` seconds for one.',
      query: Type.Object({
        wait: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_WAIT_S, description: `Seconds to wait for a new pending approval (at most ${MAX_WAIT_S}).` })),
        after: Type.Optional(Type.String({ format: 'date-time', description: 'With wait: only approvals created after this time count as new (the created_at of the newest you have).' })),
      }),
      async handle({ query, signal }) {
        const after = query.after === undefined ? Number.NEGATIVE_INFINITY : Date.parse(query.after)
        const until = Date.now() + (query.wait ?? 0) * 1000
        for (;;) {
          const pending = await deps.approvals.repo.pending(deps.clock(), LIST_LIMIT)
          const remaining = until - Date.now()
          if (pending.some((a) => a.createdAt > after) || remaining <= 0 || signal.aborted) return { kind: 'json', body: { approvals: pending.map(approvalView) } }
          await deps.approvals.parkedOrAfter(Math.min(LONG_POLL_STEP_MS, remaining), signal)
        }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/approvals/{id}', roles: ROLES, action: 'approval.get', params: ID, response: APPROVAL_VIEW,
      summary: 'One approval, pending or decided.',
      async handle({ params, note }) {
        note({ approval: params.id })
        const found = await deps.approvals.repo.get(params.id)
        if (found === undefined) throw new KeyvaletError('admin_not_found', { message: `No approval ${params.id}.` })
        return { kind: 'json', body: approvalView(found) }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/approvals/{id}/approve', roles: ROLES, action: 'approval.approve', params: ID, response: APPROVAL_VIEW,
      body: Type.Object({
        remember_minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1440, description: 'Also let identical requests of this session (the same digest) through without asking, for this many minutes.' })),
        reason: Type.Optional(Type.String({ maxLength: REASON_LIMIT })),
      }),
      summary: 'Approve a pending request: exactly the bytes it was parked with are forwarded. Refused (409) once it is decided, expired or withdrawn.',
      async handle({ params, body, actor, note }) {
        note({ approval: params.id })
        const at = deps.clock()
        const decided = await deps.approvals.decide(params.id, {
          state: 'approved', approver: approver(actor), at,
          reason: body.reason === undefined ? undefined : safeText(body.reason, REASON_LIMIT),
          rememberUntil: body.remember_minutes === undefined ? undefined : at + body.remember_minutes * 60_000,
        })
        noteDecision(note, decided, at - decided.createdAt)
        return { kind: 'json', body: approvalView(decided) }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/approvals/{id}/deny', roles: ROLES, action: 'approval.deny', params: ID, response: APPROVAL_VIEW,
      body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: REASON_LIMIT, description: 'Shown to the sandbox (control characters removed, at most 200 characters of it) and recorded.' }) }),
      summary: 'Deny a pending request with a reason: the sandbox gets 403 approval_denied with it. Refused (409) once it is decided, expired or withdrawn.',
      async handle({ params, body, actor, note }) {
        note({ approval: params.id })
        const at = deps.clock()
        const decided = await deps.approvals.decide(params.id, { state: 'denied', approver: approver(actor), at, reason: safeText(body.reason, REASON_LIMIT), rememberUntil: undefined })
        noteDecision(note, decided, at - decided.createdAt)
        return { kind: 'json', body: approvalView(decided) }
      },
    }),
  ] as const
}
