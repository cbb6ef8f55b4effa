import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { StoredSession } from '../../src/model/session.ts'
import type { SessionRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The session part of the Store contract: the cases for each method of SessionRepo. */
export const sessionCases: RepoCases<SessionRepo> = {
  insert: {
    'refuses a second session with the same key hash': async (store) => {
      await store.sessions.insert(session('ses_a', 'same'))
      await assert.rejects(store.sessions.insert(session('ses_b', 'same')))
    },
  },
  findByKeyHash: {
    'returns undefined for unknown ids and hashes': async (store) => {
      assert.equal(await store.sessions.get('ses_nope'), undefined)
      assert.equal(await store.sessions.findByKeyHash(hash('nope')), undefined)
    },
  },
  get: {
    'inserts and finds a session by key hash and by id': async (store) => {
      const s = session('ses_a', 'key-a')
      await store.sessions.insert(s)
      assert.deepEqual(await store.sessions.findByKeyHash(hash('key-a')), s)
      const { keyHash: _omitted, ...publicPart } = s
      const got = await store.sessions.get('ses_a')
      assert.deepEqual(got, publicPart)
      assert.equal(got !== undefined && 'keyHash' in got, false, 'get() must not expose the key hash')
    },
  },
  list: {
    'lists sessions without key hashes': async (store) => {
      await store.sessions.insert(session('ses_a', 'key-a', 1000))
      await store.sessions.insert(session('ses_b', 'key-b', 2000))
      const list = await store.sessions.list()
      assert.deepEqual(list.map((s) => s.id), ['ses_a', 'ses_b'])
      for (const s of list) assert.equal('keyHash' in s, false)
    },
  },
  listStored: {
    'lists sessions with their key hashes and revocation, in creation order': async (store) => {
      const a = session('ses_a', 'key-a', 1000)
      const b = session('ses_b', 'key-b', 2000)
      await store.sessions.insert(b)
      await store.sessions.insert(a)
      await store.sessions.revoke('ses_b', 2500)
      assert.deepEqual(await store.sessions.listStored(), [a, { ...b, revokedAt: 2500 }])
    },
  },
  revoke: {
    'revokes once: a second revoke keeps the first time': async (store) => {
      await store.sessions.insert(session('ses_a', 'key-a'))
      assert.equal(await store.sessions.revoke('ses_a', 5000), true)
      assert.equal(await store.sessions.revoke('ses_a', 9000), true)
      assert.equal((await store.sessions.get('ses_a'))?.revokedAt, 5000)
      assert.equal((await store.sessions.findByKeyHash(hash('key-a')))?.revokedAt, 5000)
    },
    'revoke of an unknown id returns false': async (store) => {
      assert.equal(await store.sessions.revoke('ses_nope', 1), false)
    },
  },
}

function hash(key: string): Buffer {
  return createHash('sha256').update(key).digest()
}

function session(id: string, key: string, createdAt = 1000): StoredSession {
  return {
    id,
    keyHash: hash(key),
    agent: 'agent-1',
    user: 'alice@example.com',
    workspace: 'ws-1',
    task: 'tsk_1',
    grants: [
      { connector: 'github', maxSeverity: 'read', rules: undefined },
      { connector: 'openai', maxSeverity: 'write', rules: ['chat'] },
    ],
    createdAt,
    expiresAt: createdAt + 60_000,
    revokedAt: undefined,
  }
}
