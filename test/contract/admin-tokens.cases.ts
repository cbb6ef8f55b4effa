import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { StoredAdminToken } from '../../src/model/admin-token.ts'
import type { AdminTokenRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The admin token part of the Store contract: the cases for each method of AdminTokenRepo. */
export const adminTokenCases: RepoCases<AdminTokenRepo> = {
  insert: {
    'refuses a second token with the same digest or id': async (store) => {
      await store.adminTokens.insert(token('kat_a', 'same'))
      await assert.rejects(store.adminTokens.insert(token('kat_b', 'same')))
      await assert.rejects(store.adminTokens.insert(token('kat_a', 'other')))
    },
  },
  findByDigest: {
    'finds a token by digest, with its expiry, and nothing for an unknown digest': async (store) => {
      const t = { ...token('kat_a', 'tok-a'), expiresAt: 99_000 }
      await store.adminTokens.insert(t)
      await store.adminTokens.insert(token('kat_b', 'tok-b'))
      assert.deepEqual(await store.adminTokens.findByDigest(digest('tok-a')), t)
      assert.equal((await store.adminTokens.findByDigest(digest('tok-b')))?.expiresAt, undefined)
      assert.equal(await store.adminTokens.findByDigest(digest('nope')), undefined)
    },
  },
  list: {
    'lists tokens in creation order without digests': async (store) => {
      await store.adminTokens.insert(token('kat_b', 'tok-b', 2000))
      await store.adminTokens.insert(token('kat_a', 'tok-a', 1000))
      const list = await store.adminTokens.list()
      assert.deepEqual(list.map((t) => [t.id, t.name, t.role]), [['kat_a', 'name-kat_a', 'operator'], ['kat_b', 'name-kat_b', 'operator']])
      for (const t of list) assert.equal('digest' in t, false)
    },
  },
  listStored: {
    'lists tokens in creation order with their digests': async (store) => {
      const b = { ...token('kat_b', 'tok-b', 2000), revokedAt: 3000 }
      const a = { ...token('kat_a', 'tok-a', 1000), expiresAt: 99_000 }
      await store.adminTokens.insert(b)
      await store.adminTokens.insert(a)
      assert.deepEqual(await store.adminTokens.listStored(), [a, b])
    },
  },
  revoke: {
    'revokes once: a second revoke keeps the first time; an unknown id is false': async (store) => {
      await store.adminTokens.insert(token('kat_a', 'tok-a'))
      assert.equal((await store.adminTokens.findByDigest(digest('tok-a')))?.revokedAt, undefined)
      assert.equal(await store.adminTokens.revoke('kat_a', 5000), true)
      assert.equal(await store.adminTokens.revoke('kat_a', 9000), true)
      assert.equal((await store.adminTokens.findByDigest(digest('tok-a')))?.revokedAt, 5000)
      assert.equal((await store.adminTokens.list())[0]?.revokedAt, 5000)
      assert.equal(await store.adminTokens.revoke('kat_nope', 1), false)
    },
  },
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

function token(id: string, value: string, createdAt = 1000): StoredAdminToken {
  return { id, digest: digest(value), name: `name-${id}`, role: 'operator', createdAt, expiresAt: undefined, revokedAt: undefined }
}
