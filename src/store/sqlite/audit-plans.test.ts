import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, describe, it } from 'node:test'
import { auditPathFor, SqliteStore } from '../sqlite-store.ts'
import type { AuditFilter } from '../store.ts'
import { querySql } from './audit.ts'

/**
 * Each facet index of the audit file costs every commit a page written to the WAL (bench/audit-insert.ts);
 * each earns it: the planner walks it for its filter, newest first, so a page of a large file is
 * read from the index and not by scanning the table.
 */
describe('SQLite audit query plans', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-plans-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('a query by each indexed facet, and by time, walks that facet\'s index', async () => {
    const path = join(dir, 'keyvalet.db')
    await SqliteStore.open(path).close()
    const db = new DatabaseSync(auditPathFor(path), { readOnly: true })
    try {
      const plan = (filter: AuditFilter): string => {
        const { sql, params } = querySql(filter, { order: 'desc', limit: 50 })
        return db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params).map((row) => String(row.detail)).join('; ')
      }
      for (const name of ['session', 'agent', 'user', 'workspace', 'task', 'connector', 'error'] as const) {
        assert.match(plan({ [name]: 'x' }), new RegExp(`USING INDEX audit_by_${name} \\(${name}=\\?\\)`), name)
        assert.doesNotMatch(plan({ [name]: 'x' }), /TEMP B-TREE/, `${name}: the index gives seq order, no sort`)
      }
      assert.match(plan({ since: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z' }), /USING INDEX audit_by_time \(time>\? AND time<\?\)/)
    } finally {
      db.close()
    }
  })
})
