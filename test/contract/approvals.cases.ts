import assert from 'node:assert/strict'
import type { PendingApproval, Verdict } from '../../src/model/approval.ts'
import type { ApprovalRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

const T0 = 1_700_000_000_000
const MINUTE = 60_000
const ALICE = { id: 'kat_0123456789abcdef', name: 'alice' }

function pending(id: string, over: Partial<PendingApproval> = {}): PendingApproval {
  return {
    id, requestId: `req_${id}`, session: 'ses_00000000000000a1', agent: 'agent', user: 'u', workspace: 'w', task: 't', connector: 'github', rule: 'create-issue',
    method: 'POST', host: 'api.github.com', path: '/repos/o/r/issues?x=1', summary: 'Create issue "x"', digest: `sha256:${'ab'.repeat(32)}`,
    createdAt: T0, expiresAt: T0 + 2 * MINUTE, ...over,
  }
}

const approve = (at: number, rememberUntil?: number): Verdict => ({ state: 'approved', approver: ALICE, reason: undefined, at, rememberUntil })
const deny = (at: number, reason: string): Verdict => ({ state: 'denied', approver: ALICE, reason, at, rememberUntil: undefined })

/** The approval part of the Store contract: the cases for each method of ApprovalRepo. */
export const approvalCases: RepoCases<ApprovalRepo> = {
  insert: {
    'keeps every field, pending and undecided': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      assert.deepEqual(await store.approvals.get('apr_1'), { ...pending('apr_1'), state: 'pending', decidedAt: undefined, approver: undefined, reason: undefined, rememberUntil: undefined })
    },
    'refuses a second approval with the same id': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      await assert.rejects(store.approvals.insert(pending('apr_1')))
    },
  },
  insertWithin: {
    "inserts while the session has fewer than max pending; expired, decided and other sessions' approvals do not count": async (store) => {
      const now = T0 + MINUTE
      assert.equal(await store.approvals.insertWithin(pending('apr_1'), 2, now), true)
      await store.approvals.insert(pending('apr_old', { expiresAt: now }))
      await store.approvals.insert(pending('apr_other', { session: 'ses_00000000000000b2' }))
      await store.approvals.insert(pending('apr_done'))
      await store.approvals.decide('apr_done', approve(T0 + 1))
      assert.equal(await store.approvals.insertWithin(pending('apr_2'), 2, now), true)
      assert.equal(await store.approvals.insertWithin(pending('apr_3'), 2, now), false)
      assert.equal(await store.approvals.get('apr_3'), undefined, 'nothing inserted')
      assert.equal((await store.approvals.get('apr_2'))?.state, 'pending')
    },
    'lets exactly max of many concurrent inserts of one session through': async (store) => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.approvals.insertWithin(pending(`apr_c${i}`), 5, T0)))
      assert.equal(results.filter(Boolean).length, 5)
      assert.equal((await store.approvals.pending(T0, 100)).length, 5)
    },
  },
  get: {
    'is undefined for an unknown id': async (store) => {
      assert.equal(await store.approvals.get('apr_none'), undefined)
    },
  },
  pending: {
    'lists pending approvals not expired, oldest first, at most limit': async (store) => {
      await store.approvals.insert(pending('apr_b', { createdAt: T0 + 2 }))
      await store.approvals.insert(pending('apr_a', { createdAt: T0 + 1 }))
      await store.approvals.insert(pending('apr_old', { createdAt: T0, expiresAt: T0 + 10 }))
      await store.approvals.insert(pending('apr_done', { createdAt: T0 + 3 }))
      await store.approvals.decide('apr_done', approve(T0 + 5))
      assert.deepEqual((await store.approvals.pending(T0 + 10, 10)).map((a) => a.id), ['apr_a', 'apr_b'])
      assert.deepEqual((await store.approvals.pending(T0 + 10, 1)).map((a) => a.id), ['apr_a'])
    },
  },
  settled: {
    'returns only those of the ids no longer pending': async (store) => {
      for (const id of ['apr_1', 'apr_2', 'apr_3', 'apr_x']) await store.approvals.insert(pending(id))
      await store.approvals.decide('apr_1', approve(T0 + 1))
      await store.approvals.close('apr_2', 'cancelled', T0 + 1)
      await store.approvals.decide('apr_x', deny(T0 + 1, 'no'))
      const settled = await store.approvals.settled(['apr_1', 'apr_2', 'apr_3', 'apr_none'])
      assert.deepEqual(settled.map((a) => [a.id, a.state]).sort(), [['apr_1', 'approved'], ['apr_2', 'cancelled']])
      assert.deepEqual(await store.approvals.settled([]), [])
    },
    'answers for more ids than one statement takes': async (store) => {
      const ids = Array.from({ length: 1200 }, (_, i) => `apr_${i}`)
      await store.approvals.insert(pending('apr_1100'))
      await store.approvals.decide('apr_1100', approve(T0 + 1))
      assert.deepEqual((await store.approvals.settled(ids)).map((a) => a.id), ['apr_1100'])
    },
  },
  decide: {
    'takes the first verdict only: approver, reason and times recorded': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      const decided = await store.approvals.decide('apr_1', deny(T0 + 5, 'not this repo'))
      assert.equal(decided?.state, 'denied')
      assert.deepEqual(decided?.approver, ALICE)
      assert.equal(decided?.reason, 'not this repo')
      assert.equal(decided?.decidedAt, T0 + 5)
      assert.equal(await store.approvals.decide('apr_1', approve(T0 + 6)), undefined)
      assert.equal((await store.approvals.get('apr_1'))?.state, 'denied')
    },
    'refuses a verdict at or after the expiry, and on an unknown id': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      assert.equal(await store.approvals.decide('apr_1', approve(T0 + 2 * MINUTE)), undefined)
      assert.equal((await store.approvals.get('apr_1'))?.state, 'pending')
      assert.equal(await store.approvals.decide('apr_none', approve(T0)), undefined)
    },
    'exactly one of many concurrent verdicts wins': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      const verdicts = Array.from({ length: 20 }, (_, i) => store.approvals.decide('apr_1', i % 2 === 0 ? approve(T0 + 1) : deny(T0 + 1, `r${i}`)))
      const results = await Promise.all([...verdicts, store.approvals.close('apr_1', 'expired', T0 + 1)])
      assert.equal(results.filter((r) => r !== undefined && r !== false).length, 1)
    },
  },
  close: {
    'ends a pending approval once; never one already decided': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      await store.approvals.insert(pending('apr_2'))
      assert.equal(await store.approvals.close('apr_1', 'expired', T0 + 1), true)
      assert.equal(await store.approvals.close('apr_1', 'cancelled', T0 + 2), false)
      assert.equal((await store.approvals.get('apr_1'))?.state, 'expired')
      await store.approvals.decide('apr_2', approve(T0 + 1))
      assert.equal(await store.approvals.close('apr_2', 'cancelled', T0 + 2), false)
      assert.equal((await store.approvals.get('apr_2'))?.state, 'approved')
    },
  },
  remembered: {
    'finds an approval of the same session and digest remembered past now, no other': async (store) => {
      await store.approvals.insert(pending('apr_1'))
      await store.approvals.decide('apr_1', approve(T0 + 1, T0 + 10 * MINUTE))
      await store.approvals.insert(pending('apr_2', { digest: `sha256:${'cd'.repeat(32)}` }))
      await store.approvals.decide('apr_2', approve(T0 + 1))
      await store.approvals.insert(pending('apr_3', { session: 'ses_00000000000000b2' }))
      await store.approvals.decide('apr_3', deny(T0 + 1, 'no'))
      assert.equal((await store.approvals.remembered('ses_00000000000000a1', pending('x').digest, T0 + 5 * MINUTE))?.id, 'apr_1')
      assert.equal(await store.approvals.remembered('ses_00000000000000a1', pending('x').digest, T0 + 10 * MINUTE), undefined)
      assert.equal(await store.approvals.remembered('ses_00000000000000a1', `sha256:${'cd'.repeat(32)}`, T0 + 2), undefined)
      assert.equal(await store.approvals.remembered('ses_00000000000000b2', pending('x').digest, T0 + 2), undefined)
    },
  },
}
