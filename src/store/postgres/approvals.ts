import type { Verdict } from '../../model/approval.ts'
import { approvalFromRow } from '../approval-row.ts'
import type { ApprovalRepo } from '../store.ts'
import type { Sql } from './connect.ts'

/** ApprovalRepo on the `approvals` table: each method beside its statement. */
export function postgresApprovals(sql: Sql): ApprovalRepo {
  return {
    insert: async (a) => {
      await sql`INSERT INTO approvals (id, request_id, session, agent, "user", workspace, task, connector, rule, method, host, path, summary, digest, created_at, expires_at, state)
        VALUES (${a.id}, ${a.requestId}, ${a.session}, ${a.agent}, ${a.user}, ${a.workspace}, ${a.task}, ${a.connector}, ${a.rule}, ${a.method}, ${a.host}, ${a.path}, ${a.summary}, ${a.digest}, ${a.createdAt}, ${a.expiresAt}, 'pending')`
    },
    // The transaction lock per session makes the count and the insert one step across instances.
    insertWithin: async (a, max, now) => sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`keyvalet:approvals:${a.session}`}, 0))`
      const inserted = await tx`INSERT INTO approvals (id, request_id, session, agent, "user", workspace, task, connector, rule, method, host, path, summary, digest, created_at, expires_at, state)
        SELECT ${a.id}, ${a.requestId}, ${a.session}, ${a.agent}, ${a.user}, ${a.workspace}, ${a.task}, ${a.connector}, ${a.rule}, ${a.method}, ${a.host}, ${a.path}, ${a.summary}, ${a.digest}, ${a.createdAt}, ${a.expiresAt}, 'pending'
        WHERE (SELECT count(*) FROM approvals WHERE session = ${a.session} AND state = 'pending' AND expires_at > ${now}) < ${max}`
      return inserted.count > 0
    }),
    get: async (id) => {
      const [row] = await sql`SELECT * FROM approvals WHERE id = ${id}`
      return row === undefined ? undefined : approvalFromRow(row)
    },
    pending: async (now, limit) => (await sql`SELECT * FROM approvals WHERE state = 'pending' AND expires_at > ${now} ORDER BY created_at, id COLLATE "C" LIMIT ${limit}`).map(approvalFromRow),
    settled: async (ids) => (ids.length === 0 ? [] : (await sql`SELECT * FROM approvals WHERE state <> 'pending' AND id = ANY(${ids as string[]}::text[])`).map(approvalFromRow)),
    // One statement each: PostgreSQL re-checks the WHERE on the row's latest committed version, so exactly one state change wins.
    decide: async (id, v: Verdict) => {
      const [row] = await sql`UPDATE approvals SET state = ${v.state}, decided_at = ${v.at}, approver_id = ${v.approver.id}, approver_name = ${v.approver.name}, reason = ${v.reason ?? null}, remember_until = ${v.rememberUntil ?? null}
        WHERE id = ${id} AND state = 'pending' AND expires_at > ${v.at} RETURNING *`
      return row === undefined ? undefined : approvalFromRow(row)
    },
    close: async (id, state, at) => (await sql`UPDATE approvals SET state = ${state}, decided_at = ${at} WHERE id = ${id} AND state = 'pending'`).count > 0,
    remembered: async (session, digest, now) => {
      const [row] = await sql`SELECT * FROM approvals WHERE session = ${session} AND digest = ${digest} AND state = 'approved' AND remember_until > ${now} ORDER BY remember_until DESC LIMIT 1`
      return row === undefined ? undefined : approvalFromRow(row)
    },
  }
}
