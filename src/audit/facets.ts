import type { AuditFacets, AuditFilter } from '../store/store.ts'
import type { AuditRecord } from './record.ts'

/** What a query filters on, from a record (AuditLog stores it beside the line). */
export function auditFacets(record: Pick<AuditRecord, 'time' | 'session' | 'agent' | 'user' | 'workspace' | 'task' | 'connector' | 'decision' | 'error' | 'mode' | 'phase'>): AuditFacets {
  return {
    time: record.time, session: record.session, agent: record.agent, user: record.user, workspace: record.workspace,
    task: record.task, connector: record.connector, decision: record.decision, error: record.error, mode: record.mode, phase: record.phase ?? null,
  }
}

const EXACT = ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error'] as const

/** Whether a record's facets match a filter, as a store's `query` decides it (the live stream filters with this). */
export function matchesFilter(facets: AuditFacets, filter: AuditFilter): boolean {
  for (const name of EXACT) {
    const wanted = filter[name]
    if (wanted !== undefined && facets[name] !== wanted) return false
  }
  if (filter.since !== undefined && !(facets.time >= filter.since)) return false
  if (filter.until !== undefined && !(facets.time < filter.until)) return false
  return true
}
