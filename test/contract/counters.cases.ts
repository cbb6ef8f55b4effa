import assert from 'node:assert/strict'
import type { CounterRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

/** The counter part of the Store contract: the cases for each method of CounterRepo. */
export const counterCases: RepoCases<CounterRepo> = {
  spend: {
    'adds while the total stays within the limit, then refuses and adds nothing': async (store) => {
      const spend = (amount: number) => store.counters.spend({ key: 'k', amount, limit: 5, now: T0, expiresAt: T0 + HOUR })
      assert.equal(await spend(2), true)
      assert.equal(await spend(3), true)
      assert.equal(await spend(1), false)
      assert.equal(await store.counters.used('k', T0), 5)
    },
    'refuses a first amount over the limit without creating the counter': async (store) => {
      assert.equal(await store.counters.spend({ key: 'big', amount: 6, limit: 5, now: T0, expiresAt: T0 + HOUR }), false)
      assert.equal(await store.counters.used('big', T0), 0)
      assert.equal(await store.counters.spend({ key: 'big', amount: 5, limit: 5, now: T0, expiresAt: T0 + HOUR }), true)
    },
    'keeps counters apart by key': async (store) => {
      await store.counters.spend({ key: 'a', amount: 5, limit: 5, now: T0, expiresAt: T0 + HOUR })
      assert.equal(await store.counters.spend({ key: 'b', amount: 5, limit: 5, now: T0, expiresAt: T0 + HOUR }), true)
      assert.equal(await store.counters.used('a', T0), 5)
    },
    'an expired counter starts again from 0': async (store) => {
      await store.counters.spend({ key: 'w', amount: 5, limit: 5, now: T0, expiresAt: T0 + 1000 })
      assert.equal(await store.counters.spend({ key: 'w', amount: 1, limit: 5, now: T0 + 999, expiresAt: T0 + 1000 }), false)
      assert.equal(await store.counters.spend({ key: 'w', amount: 4, limit: 5, now: T0 + 1000, expiresAt: T0 + 2000 }), true)
      assert.equal(await store.counters.used('w', T0 + 1500), 4)
    },
    'a negative amount gives back what was spent, so the freed room can be spent again': async (store) => {
      const spend = (amount: number, limit = 2) => store.counters.spend({ key: 'r', amount, limit, now: T0, expiresAt: T0 + HOUR })
      assert.deepEqual([await spend(1), await spend(1), await spend(1)], [true, true, false])
      assert.equal(await spend(-1, Number.MAX_SAFE_INTEGER), true)
      assert.equal(await store.counters.used('r', T0), 1)
      assert.equal(await spend(1), true)
    },
    'exactly the limit is spent by concurrent spenders': async (store) => {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.counters.spend({ key: 'c', amount: 1, limit: 20, now: T0, expiresAt: T0 + HOUR })))
      assert.equal(results.filter(Boolean).length, 20)
      assert.equal(await store.counters.used('c', T0), 20)
    },
  },
  used: {
    'is 0 for an unknown counter and for an expired one': async (store) => {
      assert.equal(await store.counters.used('nope', T0), 0)
      await store.counters.spend({ key: 'e', amount: 3, limit: 5, now: T0, expiresAt: T0 + 1000 })
      assert.equal(await store.counters.used('e', T0 + 999), 3)
      assert.equal(await store.counters.used('e', T0 + 1000), 0)
    },
  },
}
