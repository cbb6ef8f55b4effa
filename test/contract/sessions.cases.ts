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
    'keeps the request budget a session was created with': async (store) => {
      const s = { ...session('ses_b', 'key-b'), budget: 25 }
      await store.sessions.insert(s)
      assert.equal((await store.sessions.get('ses_b'))?.budget, 25)
      assert.equal((await store.sessions.findByKeyHash(hash('key-b')))?.budget, 25)
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
  page: {
    'pages through the sessions matching a filter in creation order, after the cursor': async (store) => {
      await store.sessions.insert({ ...session('ses_c', 'key-c', 3000), agent: 'other' })
      await store.sessions.insert(session('ses_b', 'key-b', 2000))
      await store.sessions.insert(session('ses_a', 'key-a', 2000))
      await store.sessions.insert({ ...session('ses_d', 'key-d', 4000), workspace: 'ws-2' })
      const ids = async (...args: Parameters<typeof store.sessions.page>) => (await store.sessions.page(...args)).map((s) => s.id)
      assert.deepEqual(await ids({}, undefined, 10), ['ses_a', 'ses_b', 'ses_c', 'ses_d'])
      assert.deepEqual(await ids({}, undefined, 2), ['ses_a', 'ses_b'])
      assert.deepEqual(await ids({}, { createdAt: 2000, id: 'ses_a' }, 2), ['ses_b', 'ses_c'])
      assert.deepEqual(await ids({}, { createdAt: 4000, id: 'ses_d' }, 2), [])
      assert.deepEqual(await ids({ agent: 'agent-1' }, undefined, 10), ['ses_a', 'ses_b', 'ses_d'])
      assert.deepEqual(await ids({ agent: 'agent-1', workspace: 'ws-2' }, undefined, 10), ['ses_d'])
      assert.deepEqual(await ids({ user: 'bob' }, undefined, 10), [])
      const [first] = await store.sessions.page({ task: 'tsk_1' }, undefined, 1)
      assert.equal(first !== undefined && 'keyHash' in first, false, 'page() must not expose the key hash')
    },
  },
  revokeMatching: {
    'revokes the live sessions matching the filter, once, and returns their ids': async (store) => {
      await store.sessions.insert(session('ses_a', 'key-a'))
      await store.sessions.insert({ ...session('ses_b', 'key-b'), user: 'bob' })
      await store.sessions.insert(session('ses_c', 'key-c'))
      await store.sessions.revoke('ses_c', 100)
      assert.deepEqual(await store.sessions.revokeMatching({ user: 'alice@example.com' }, 5000), ['ses_a'])
      assert.equal((await store.sessions.findByKeyHash(hash('key-a')))?.revokedAt, 5000)
      assert.equal((await store.sessions.get('ses_b'))?.revokedAt, undefined)
      assert.equal((await store.sessions.get('ses_c'))?.revokedAt, 100, 'an earlier revocation keeps its time')
      assert.deepEqual(await store.sessions.revokeMatching({ user: 'alice@example.com' }, 6000), [])
    },
    'refuses an empty filter': async (store) => {
      await store.sessions.insert(session('ses_a', 'key-a'))
      await assert.rejects(store.sessions.revokeMatching({}, 5000))
      assert.equal((await store.sessions.get('ses_a'))?.revokedAt, undefined)
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
