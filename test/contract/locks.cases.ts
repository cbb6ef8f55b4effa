import assert from 'node:assert/strict'
import type { LockRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The locks part of the Store contract. */
export const lockCases: RepoCases<LockRepo> = {
  exclusive: {
    'one holder of a name at a time, in turn; another name does not wait; a failed holder lets the next one in': async (store) => {
      const events: string[] = []
      let release: () => void = () => {}
      const held = new Promise<void>((resolve) => { release = resolve })
      const first = store.locks.exclusive('token-a', async () => {
        events.push('first in')
        await held
        events.push('first out')
        throw new Error('first failed')
      })
      // The first holder is in (bounded: 10 s) before the second asks.
      for (let i = 0; i < 1000 && events.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      const second = store.locks.exclusive('token-a', async () => {
        events.push('second in')
        return 'second'
      })
      const other = await store.locks.exclusive('token-b', async () => {
        events.push('other')
        return 'other'
      })
      assert.equal(other, 'other')
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(events, ['first in', 'other'], 'the second holder of token-a waits')
      release()
      await assert.rejects(first, /first failed/)
      assert.equal(await second, 'second')
      assert.deepEqual(events, ['first in', 'other', 'first out', 'second in'])
    },
    'a holder reads what the previous holder wrote': async (store) => {
      const put = (value: string) => store.secrets.put({ name: 'keyvalet.token.x', envelope: Buffer.from(value), keyId: 'k1', createdAt: 1, updatedAt: 1 })
      const results = await Promise.all([1, 2, 3].map(() => store.locks.exclusive('token-x', async () => {
        const found = await store.secrets.get('keyvalet.token.x')
        if (found !== undefined) return `read ${found.envelope.toString()}`
        await put('fetched once')
        return 'fetched'
      })))
      // Whoever got the lock first fetched; the others read what it wrote.
      assert.deepEqual(results.sort(), ['fetched', 'read fetched once', 'read fetched once'])
    },
  },
}
