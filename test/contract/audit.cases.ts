import assert from 'node:assert/strict'
import type { AuditRepo, AuditRow } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The audit part of the Store contract: the cases for each method of AuditRepo. */
export const auditCases: RepoCases<AuditRepo> = {
  append: {
    'appends a chain, passing the last row to build': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      const seen: (AuditRow | undefined)[] = []
      for (let i = 0; i < 3; i++) {
        await store.audit.append((last) => {
          seen.push(last)
          return nextRow(last)
        })
      }
      assert.equal(seen[0], undefined)
      assert.equal(seen[1]?.seq, 1)
      assert.equal(seen[2]?.hash, 'h2')
      assert.deepEqual(await store.audit.last(), { seq: 3, hash: 'h3', line: '{"n":3}' })
    },
    'rejects a row whose seq is not last.seq + 1, and appends nothing': async (store) => {
      await assert.rejects(store.audit.append(() => ({ seq: 2, hash: 'x', line: '{}' })))
      await store.audit.append(nextRow)
      await assert.rejects(store.audit.append(() => ({ seq: 1, hash: 'x', line: '{}' })))
      await assert.rejects(store.audit.append(() => ({ seq: 3, hash: 'x', line: '{}' })))
      assert.equal((await store.audit.last())?.seq, 1)
    },
    'rolls back when build throws': async (store) => {
      await assert.rejects(
        store.audit.append(() => {
          throw new Error('boom')
        }),
        /boom/,
      )
      assert.equal(await store.audit.last(), undefined)
      await store.audit.append(nextRow)
      assert.equal((await store.audit.last())?.seq, 1)
    },
  },
  appendMany: {
    'appends several rows in one transaction: all of them, or none when one is out of order': async (store) => {
      await store.audit.append(nextRow)
      const rows = await store.audit.appendMany((last) => {
      const first = nextRow(last)
      return [first, nextRow(first), nextRow(nextRow(first))]
      })
      assert.deepEqual(rows.map((r) => r.seq), [2, 3, 4])
      await assert.rejects(store.audit.appendMany((last) => [nextRow(last), { seq: 9, hash: 'x', line: '{}' }]))
      assert.deepEqual((await store.audit.read(0, 10)).map((r) => r.seq), [1, 2, 3, 4])
    },
  },
  read: {
    'reads in seq order, after a seq, in pages': async (store) => {
      for (let i = 0; i < 7; i++) await store.audit.append(nextRow)
      const all = await store.audit.read(0, 100)
      assert.deepEqual(all.map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7])
      assert.deepEqual((await store.audit.read(0, 3)).map((r) => r.seq), [1, 2, 3])
      assert.deepEqual((await store.audit.read(3, 3)).map((r) => r.seq), [4, 5, 6])
      assert.deepEqual((await store.audit.read(6, 3)).map((r) => r.seq), [7])
      assert.deepEqual(await store.audit.read(7, 3), [])
      assert.deepEqual(all[4], { seq: 5, hash: 'h5', line: '{"n":5}' })
    },
  },
  last: {
    'is undefined on an empty log, then the row with the highest seq': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      for (let i = 0; i < 3; i++) await store.audit.append(nextRow)
      assert.deepEqual(await store.audit.last(), { seq: 3, hash: 'h3', line: '{"n":3}' })
    },
  },
}

function nextRow(last: AuditRow | undefined): AuditRow {
  const seq = (last?.seq ?? 0) + 1
  return { seq, hash: `h${seq}`, line: `{"n":${seq}}` }
}
