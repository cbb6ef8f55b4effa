import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, describe, it } from 'node:test'
import { auditPathFor, SqliteStore } from '../sqlite-store.ts'
import type { AuditFilter, AuditPage } from '../store.ts'
import { querySql, SUMMARY_SQL } from './audit.ts'

/**
 * The facet indexes of the audit file are on audit_facets, filled in arrears (audit-facets.ts);
 * each earns what its catch-up costs: the planner walks it for its filter, in seq order, so a page
 * of a large file is read from the index and not by scanning the table; and the tail not yet
 * indexed is read from `audit` by rowid range, never by scanning the whole table.
 */
describe('SQLite audit query plans', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-plans-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('a query by each indexed facet, and by time, walks that facet\'s index on audit_facets, and the tail by rowid range', async () => {
    const path = join(dir, 'keyvalet.db')
    await SqliteStore.open(path).close()
    const db = new DatabaseSync(auditPathFor(path), { readOnly: true })
    try {
      const plan = (sql: string, params: (string | number)[]): string => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params).map((row) => String(row.detail)).join('; ')
      const queryPlan = (filter: AuditFilter, page: AuditPage = { order: 'desc', limit: 50 }): string => {
        const { sql, params } = querySql(filter, page)
        return plan(sql, params)
      }
      const TAIL = /SEARCH audit USING INTEGER PRIMARY KEY \(rowid>\?\)/
      for (const name of ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'error'] as const) {
        for (const page of [{ order: 'desc', limit: 50 }, { order: 'asc', after: 10, limit: 50 }] as const) {
          const shown = queryPlan({ [name]: 'x', decision: 'allow' }, page)
          assert.match(shown, new RegExp(`SEARCH f USING (COVERING )?INDEX audit_facets_by_${name} \\(${name}=\\?`), `${name}: ${shown}`)
          assert.match(shown, /SEARCH a USING INTEGER PRIMARY KEY \(rowid=\?\)/, `${name}: the line by seq`)
          assert.match(shown, TAIL, `${name}: the tail`)
          assert.doesNotMatch(shown, /SCAN audit\b/, `${name}: no scan of the log`)
          assert.doesNotMatch(shown, /TEMP B-TREE/, `${name}: the index gives seq order, no sort`)
        }
      }
      const byTime = queryPlan({ since: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z' })
      assert.match(byTime, /SEARCH f USING (COVERING )?INDEX audit_facets_by_time \(time>\? AND time<\?\)/)
      assert.match(byTime, TAIL)
      assert.doesNotMatch(byTime, /SCAN audit\b/)
      for (const [name, sql] of Object.entries(SUMMARY_SQL)) {
        const shown = plan(sql, ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', ...(sql.endsWith('LIMIT ?') ? [5] : [])])
        assert.match(shown, /SEARCH audit_facets USING INDEX audit_facets_by_time \(time>\? AND time<\?\)/, `${name}: ${shown}`)
        assert.match(shown, TAIL, `${name}: the tail`)
        assert.doesNotMatch(shown, /SCAN audit\b/, name)
      }
    } finally {
      db.close()
    }
  })
})
