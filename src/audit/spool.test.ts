import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, it } from 'node:test'
import { SqliteStore } from '../store/sqlite-store.ts'
import type { NewAuditRow } from '../store/store.ts'
import { AuditSpool } from './spool.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-spool-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0

const row = (instance: string, chainSeq: number): NewAuditRow => ({ instance, chainSeq, hash: `h${chainSeq}`, line: `{"seq":${chainSeq}}` })

it('keeps rows on disk, bounded; a new spool on the folder finds them (a torn last line is not owed); flushing skips what the store holds and empties the folder', async () => {
  const dir = join(root, `s${++n}`)
  const spool = AuditSpool.open({ dir, maxBytes: 300, fsync: true })
  assert.equal(spool.add([row('ins_a', 1), row('ins_a', 2)]), true)
  assert.equal(spool.add([row('ins_b', 1)]), true)
  assert.equal(spool.add([row('ins_a', 3), row('ins_a', 4), row('ins_a', 5)]), false, 'past maxBytes: refused whole')
  assert.equal(spool.pending, 3)
  assert.deepEqual(spool.lastOf('ins_a'), row('ins_a', 2))
  appendFileSync(join(dir, 'ins_b.jsonl'), '{"instance":"ins_b","chainS')

  const again = AuditSpool.open({ dir, maxBytes: 300, fsync: true })
  assert.equal(again.pending, 3)
  const store = SqliteStore.open(join(root, `db${n}`, 'keyvalet.db'))
  try {
    await store.audit.append([row('ins_a', 1)]) // a commit whose answer was lost had landed
    await again.flushInto(store.audit)
    assert.equal(again.pending, 0)
    assert.deepEqual((await store.audit.read(0, 10)).map((r) => [r.instance, r.chainSeq]), [['ins_a', 1], ['ins_a', 2], ['ins_b', 1]])
    assert.deepEqual(readdirSync(dir), [])
  } finally {
    await store.close()
  }
})

it('a flush that fails keeps every row not yet in the store, on disk', async () => {
  const dir = join(root, `s${++n}`)
  const spool = AuditSpool.open({ dir, maxBytes: 1 << 20, fsync: false })
  spool.add([row('ins_a', 1), row('ins_a', 2)])
  const store = SqliteStore.open(join(root, `db${n}`, 'keyvalet.db'))
  await store.close()
  await assert.rejects(spool.flushInto(store.audit))
  assert.equal(spool.pending, 2)
  assert.equal(AuditSpool.open({ dir, maxBytes: 1 << 20, fsync: false }).pending, 2)
})
