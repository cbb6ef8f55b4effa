import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { OperatorError } from '../errors.ts'
import { assertSound, checkStoreFiles } from './sqlite-check.ts'
import { auditPathFor, SqliteStore } from './sqlite-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-check-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let counter = 0
const PAGE = 4096

/** A store whose audit file holds `records` rows of about 500 bytes each, closed. */
async function storeWithAudit(records: number): Promise<string> {
  const path = join(dir, `db-${++counter}`, 'keyvalet.db')
  const store = SqliteStore.open(path)
  await store.audit.append(Array.from({ length: records }, (_, i) => ({ instance: 'ins_a', chainSeq: i + 1, hash: `h${i + 1}`, line: JSON.stringify({ seq: i + 1, pad: 'x'.repeat(480) }) })))
  await store.close()
  return path
}

function overwritePage(file: string, page: number): void {
  const fd = openSync(file, 'r+')
  writeSync(fd, Buffer.alloc(PAGE, 0xa5), 0, PAGE, page * PAGE)
  closeSync(fd)
}

describe('checkStoreFiles', () => {
  it('reports a store not created yet as sound', () => {
    const checks = checkStoreFiles(join(dir, 'nothing-here', 'keyvalet.db'), 'start')
    assert.deepEqual(checks.map((c) => [c.problems, c.scope]), [[[], 'not created yet'], [[], 'not created yet']])
    assert.doesNotThrow(() => assertSound(checks))
  })

  it('start: reads every page of a file within the budget; full: every page with indexes', async () => {
    const path = await storeWithAudit(200)
    for (const [depth, scope] of [['start', 'every page (quick_check)'], ['full', 'every page, indexes against tables (integrity_check)']] as const) {
      assert.deepEqual(checkStoreFiles(path, depth).map((c) => [c.file, c.problems, c.scope]), [[path, [], scope], [auditPathFor(path), [], scope]])
    }
  })

  it('start, above the budget: finds a damaged page among the newest rows, leaves older pages to the full check, and never writes', async () => {
    const path = await storeWithAudit(2000) // about 250 pages
    const audit = auditPathFor(path)
    const pages = statSync(audit).size / PAGE
    const budget = 64 * 1024 // about 130 of the newest records
    const sound = checkStoreFiles(path, 'start', budget)[1]
    assert.deepEqual(sound?.problems, [])
    assert.match(sound?.scope ?? '', /^header, schema and the newest rows, about 64 KiB of \d+ [KM]iB \(keyvalet db check reads the rest\)$/)

    overwritePage(audit, 5) // among the oldest records
    assert.deepEqual(checkStoreFiles(path, 'start', budget)[1]?.problems, [], 'outside the bounded part')
    assert.notDeepEqual(checkStoreFiles(path, 'full')[1]?.problems, [], 'the full check finds it')

    overwritePage(audit, pages - 3) // among the newest records
    const bytes = readFileSync(audit)
    const damaged = checkStoreFiles(path, 'start', budget)[1]
    assert.deepEqual(damaged?.problems, ['database disk image is malformed'])
    assert.ok(readFileSync(audit).equals(bytes), 'the check wrote nothing to the damaged file')
    assert.throws(() => assertSound(checkStoreFiles(path, 'start', budget)), (err: unknown) =>
      err instanceof OperatorError && err.message === `the database ${audit} is damaged (database disk image is malformed)` && /restore it from your last backup/.test(err.hint ?? ''))
  })
})
