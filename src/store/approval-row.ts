import type { Approval, ApprovalState } from '../model/approval.ts'

/** An `approvals` row as both stores keep it (the same column names), as an Approval. */
export function approvalFromRow(row: Readonly<Record<string, unknown>>): Approval {
  const optional = (value: unknown): number | undefined => (value === null || value === undefined ? undefined : Number(value))
  return {
    id: String(row.id),
    requestId: String(row.request_id),
    session: String(row.session),
    agent: String(row.agent),
    user: String(row.user),
    workspace: String(row.workspace),
    task: String(row.task),
    connector: String(row.connector),
    rule: String(row.rule),
    method: String(row.method),
    host: String(row.host),
    path: String(row.path),
    summary: String(row.summary),
    digest: String(row.digest),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    state: String(row.state) as ApprovalState,
    decidedAt: optional(row.decided_at),
    approver: row.approver_id === null || row.approver_id === undefined ? undefined : { id: String(row.approver_id), name: String(row.approver_name) },
    reason: row.reason === null || row.reason === undefined ? undefined : String(row.reason),
    rememberUntil: optional(row.remember_until),
  }
}

/** The columns of a new row, in the order of APPROVAL_COLUMNS. */
export const APPROVAL_COLUMNS = 'id, request_id, session, agent, "user", workspace, task, connector, rule, method, host, path, summary, digest, created_at, expires_at, state'
