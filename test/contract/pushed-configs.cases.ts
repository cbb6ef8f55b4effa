import assert from 'node:assert/strict'
import type { PushedConfig, PushedConfigRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

function row(seq: number, text = `connectors: {} # ${seq}`): PushedConfig {
  return { seq, text, sha256: `sha-${seq}`, pushedAt: 1000 + seq, pushedBy: 'ops@host', keyId: 'key-a', mac: Buffer.from([seq, 1, 2]) }
}

/** The pushed configurations part of the Store contract. */
export const pushedConfigCases: RepoCases<PushedConfigRepo> = {
  push: {
    'numbers pushes 1, 2, … and stores the row built for the number': async (store) => {
      const seen: number[] = []
      const first = await store.pushedConfigs.push((seq) => (seen.push(seq), row(seq)))
      const second = await store.pushedConfigs.push((seq) => (seen.push(seq), row(seq)))
      assert.deepEqual(seen, [1, 2])
      assert.deepEqual([first, second], [row(1), row(2)])
      assert.deepEqual(await store.pushedConfigs.list(10), [row(2), row(1)])
    },
    'pushes at once get distinct numbers': async (store) => {
      const stored = await Promise.all([1, 2, 3, 4].map(() => store.pushedConfigs.push((seq) => row(seq))))
      assert.deepEqual(stored.map((r) => r.seq).sort(), [1, 2, 3, 4])
    },
    'stores the row as built (a copy keeps its numbers); a number already taken is refused': async (store) => {
      await store.pushedConfigs.push(() => row(5))
      assert.equal(await store.pushedConfigs.latestSeq(), 5)
      await assert.rejects(store.pushedConfigs.push(() => row(5)))
      assert.deepEqual(await store.pushedConfigs.list(10), [row(5)])
    },
    'a row that cannot be built stores nothing': async (store) => {
      await assert.rejects(store.pushedConfigs.push(() => { throw new Error('refused') }), /refused/)
      assert.equal(await store.pushedConfigs.latestSeq(), 0)
    },
  },
  list: {
    'lists the newest first, at most limit': async (store) => {
      for (let i = 0; i < 3; i++) await store.pushedConfigs.push((seq) => row(seq))
      assert.deepEqual((await store.pushedConfigs.list(2)).map((r) => r.seq), [3, 2])
    },
  },
  latestSeq: {
    'the highest number, 0 when none': async (store) => {
      assert.equal(await store.pushedConfigs.latestSeq(), 0)
      await store.pushedConfigs.push((seq) => row(seq))
      await store.pushedConfigs.push((seq) => row(seq))
      assert.equal(await store.pushedConfigs.latestSeq(), 2)
    },
  },
  remac: {
    'replaces the MAC only while it is the one expected': async (store) => {
      await store.pushedConfigs.push((seq) => row(seq))
      assert.equal(await store.pushedConfigs.remac(1, Buffer.from([9]), 'key-b', Buffer.from([7])), false)
      assert.equal(await store.pushedConfigs.remac(1, row(1).mac, 'key-b', Buffer.from([7])), true)
      assert.deepEqual(await store.pushedConfigs.list(1), [{ ...row(1), keyId: 'key-b', mac: Buffer.from([7]) }])
      assert.equal(await store.pushedConfigs.remac(2, row(1).mac, 'key-b', Buffer.from([7])), false)
    },
  },
}
