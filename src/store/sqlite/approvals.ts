import type { DatabaseSync } from 'node:sqlite'
import type { Verdict } from '../../model/approval.ts'
import { APPROVAL_COLUMNS, approvalFromRow } from '../approval-row.ts'
import type { ApprovalRepo } from '../store.ts'

/** Ids asked about per statement (SQLite's bound-parameter limit is far above it). */
const IDS_PER_QUERY = 500

/**
 * ApprovalRepo on the `approvals` table: each method beside its statement. Reads are never cached:
 * other processes decide. `changed` is told the id of each state change made here (the signals
 * of approval-signals.ts).
 */
export function sqliteApprovals(db: DatabaseSync, changed: (id: string) => void = () => {}): ApprovalRepo {
  const insert = db.prepare(`INSERT INTO approvals (${APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')`)
  // One statement, so the count and the insert are atomic across processes (SQLite has one writer).
  const insertWithin = db.prepare(`INSERT INTO approvals (${APPROVAL_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending'
    WHERE (SELECT count(*) FROM approvals WHERE session = ? AND state = 'pending' AND expires_at > ?) < ?`)
  const get = db.prepare('SELECT * FROM approvals WHERE id = ?')
  const pending = db.prepare("SELECT * FROM approvals WHERE state = 'pending' AND expires_at > ? ORDER BY created_at, id LIMIT ?")
  // One statement each, so exactly one state change wins across processes.
  const decide = db.prepare(`UPDATE approvals SET state = :state, decided_at = :at, approver_id = :approver_id, approver_name = :approver_name, reason = :reason, remember_until = :remember_until
    WHERE id = :id AND state = 'pending' AND expires_at > :at RETURNING *`)
  const close = db.prepare("UPDATE approvals SET state = ?, decided_at = ? WHERE id = ? AND state = 'pending'")
  const remembered = db.prepare("SELECT * FROM approvals WHERE session = ? AND digest = ? AND state = 'approved' AND remember_until > ? ORDER BY remember_until DESC LIMIT 1")
  return {
    insert: async (a) => {
      insert.run(a.id, a.requestId, a.session, a.agent, a.user, a.workspace, a.task, a.connector, a.rule, a.method, a.host, a.path, a.summary, a.digest, a.createdAt, a.expiresAt)
    },
    insertWithin: async (a, max, now) =>
      insertWithin.run(a.id, a.requestId, a.session, a.agent, a.user, a.workspace, a.task, a.connector, a.rule, a.method, a.host, a.path, a.summary, a.digest, a.createdAt, a.expiresAt, a.session, now, max).changes > 0,
    get: async (id) => {
      const row = get.get(id)
      return row === undefined ? undefined : approvalFromRow(row)
    },
    pending: async (now, limit) => pending.all(now, limit).map(approvalFromRow),
    settled: async (ids) => {
      const out = []
      for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
        const chunk = ids.slice(i, i + IDS_PER_QUERY)
        const rows = db.prepare(`SELECT * FROM approvals WHERE state <> 'pending' AND id IN (${chunk.map(() => '?').join(', ')})`).all(...chunk)
        out.push(...rows.map(approvalFromRow))
      }
      return out
    },
    decide: async (id, v: Verdict) => {
      const row = decide.get({ id, state: v.state, at: v.at, approver_id: v.approver.id, approver_name: v.approver.name, reason: v.reason ?? null, remember_until: v.rememberUntil ?? null })
      if (row === undefined) return undefined
      changed(id)
      return approvalFromRow(row)
    },
    close: async (id, state, at) => {
      const closed = close.run(state, at, id).changes > 0
      if (closed) changed(id)
      return closed
    },
    remembered: async (session, digest, now) => {
      const row = remembered.get(session, digest, now)
      return row === undefined ? undefined : approvalFromRow(row)
    },
  }
}
