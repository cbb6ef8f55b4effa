import assert from 'node:assert/strict'
import type { SecretRecord, SecretRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The secret part of the Store contract: the cases for each method of SecretRepo. */
export const secretCases: RepoCases<SecretRepo> = {
  put: {
    'replace keeps createdAt and updates the rest': async (store) => {
      await store.secrets.put(secret('github', 'env-1', 100))
      await store.secrets.put({ ...secret('github', 'env-2', 300), keyId: 'k2' })
      const got = await store.secrets.get('github')
      assert.equal(got?.createdAt, 100)
      assert.equal(got?.updatedAt, 300)
      assert.equal(got?.keyId, 'k2')
      assert.deepEqual(got?.envelope, Buffer.from('env-2'))
    },
  },
  get: {
    'puts and gets a record': async (store) => {
      const r = secret('github', 'env-1', 100)
      await store.secrets.put(r)
      assert.deepEqual(await store.secrets.get('github'), r)
      assert.equal(await store.secrets.get('missing'), undefined)
    },
  },
  list: {
    'lists metadata only, never the envelope': async (store) => {
      await store.secrets.put(secret('b', 'env-b', 1))
      await store.secrets.put(secret('a', 'env-a', 2))
      const list = await store.secrets.list()
      assert.deepEqual(list.map((r) => r.name).sort(), ['a', 'b'])
      for (const r of list) assert.equal('envelope' in r, false)
      assert.deepEqual(list.find((r) => r.name === 'a'), { name: 'a', keyId: 'k1', createdAt: 2, updatedAt: 2 })
    },
  },
  delete: {
    'deletes, reporting whether the record existed': async (store) => {
      await store.secrets.put(secret('a', 'env-a', 1))
      assert.equal(await store.secrets.delete('a'), true)
      assert.equal(await store.secrets.delete('a'), false)
      assert.equal(await store.secrets.get('a'), undefined)
    },
  },
  swap: {
    'swap replaces only while the envelope is still the expected one, keeping createdAt': async (store) => {
      await store.secrets.put(secret('a', 'env-1', 1))
      assert.equal(await store.secrets.swap('a', Buffer.from('env-0'), { ...secret('a', 'env-x', 5), keyId: 'k2' }), false)
      assert.deepEqual((await store.secrets.get('a'))?.envelope, Buffer.from('env-1'))
      assert.equal(await store.secrets.swap('a', Buffer.from('env-1'), { ...secret('a', 'env-2', 5), keyId: 'k2' }), true)
      const got = await store.secrets.get('a')
      assert.deepEqual([got?.envelope, got?.keyId, got?.createdAt, got?.updatedAt], [Buffer.from('env-2'), 'k2', 1, 5])
      assert.equal(await store.secrets.swap('missing', Buffer.from('env-1'), secret('missing', 'e', 1)), false)
    },
  },
}

function secret(name: string, envelope: string, at: number): SecretRecord {
  return { name, envelope: Buffer.from(envelope), keyId: 'k1', createdAt: at, updatedAt: at }
}
