import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { afterEach, beforeEach, describe, it } from 'node:test'
import type { AuditRow, SecretRecord, Store } from '../../src/store/store.ts'
import type { StoredSession } from '../../src/model/session.ts'

/**
 * The Store contract, as node:test tests. Every Store implementation runs it:
 *   storeContract('sqlite', async () => SqliteStore.open(tmpFile()))
 * `makeStore` must return a fresh, empty store each call; the contract closes it after each test.
 */
export function storeContract(
  name: string,
  makeStore: () => Promise<Store>,
  opts: { skip?: boolean | string } = {},
): void {
  describe(`Store contract: ${name}`, { skip: opts.skip ?? false }, () => {
    let store: Store
    beforeEach(async () => {
      store = await makeStore()
    })
    afterEach(async () => {
      await store.close()
    })

    describe('sessions', () => {
      it('inserts and finds a session by key hash and by id', async () => {
        const s = session('ses_a', 'key-a')
        await store.sessions.insert(s)
        assert.deepEqual(await store.sessions.findByKeyHash(hash('key-a')), s)
        const { keyHash: _omitted, ...publicPart } = s
        const got = await store.sessions.get('ses_a')
        assert.deepEqual(got, publicPart)
        assert.equal(got !== undefined && 'keyHash' in got, false, 'get() must not expose the key hash')
      })

      it('returns undefined for unknown ids and hashes', async () => {
        assert.equal(await store.sessions.get('ses_nope'), undefined)
        assert.equal(await store.sessions.findByKeyHash(hash('nope')), undefined)
      })

      it('refuses a second session with the same key hash', async () => {
        await store.sessions.insert(session('ses_a', 'same'))
        await assert.rejects(store.sessions.insert(session('ses_b', 'same')))
      })

      it('lists sessions without key hashes', async () => {
        await store.sessions.insert(session('ses_a', 'key-a', 1000))
        await store.sessions.insert(session('ses_b', 'key-b', 2000))
        const list = await store.sessions.list()
        assert.deepEqual(list.map((s) => s.id), ['ses_a', 'ses_b'])
        for (const s of list) assert.equal('keyHash' in s, false)
      })

      it('revokes once: a second revoke keeps the first time', async () => {
        await store.sessions.insert(session('ses_a', 'key-a'))
        assert.equal(await store.sessions.revoke('ses_a', 5000), true)
        assert.equal(await store.sessions.revoke('ses_a', 9000), true)
        assert.equal((await store.sessions.get('ses_a'))?.revokedAt, 5000)
        assert.equal((await store.sessions.findByKeyHash(hash('key-a')))?.revokedAt, 5000)
      })

      it('revoke of an unknown id returns false', async () => {
        assert.equal(await store.sessions.revoke('ses_nope', 1), false)
      })
    })

    describe('secrets', () => {
      it('puts and gets a record', async () => {
        const r = secret('github', 'env-1', 100)
        await store.secrets.put(r)
        assert.deepEqual(await store.secrets.get('github'), r)
        assert.equal(await store.secrets.get('missing'), undefined)
      })

      it('replace keeps createdAt and updates the rest', async () => {
        await store.secrets.put(secret('github', 'env-1', 100))
        await store.secrets.put({ ...secret('github', 'env-2', 300), keyId: 'k2' })
        const got = await store.secrets.get('github')
        assert.equal(got?.createdAt, 100)
        assert.equal(got?.updatedAt, 300)
        assert.equal(got?.keyId, 'k2')
        assert.deepEqual(got?.envelope, Buffer.from('env-2'))
      })

      it('lists metadata only, never the envelope', async () => {
        await store.secrets.put(secret('b', 'env-b', 1))
        await store.secrets.put(secret('a', 'env-a', 2))
        const list = await store.secrets.list()
        assert.deepEqual(list.map((r) => r.name).sort(), ['a', 'b'])
        for (const r of list) assert.equal('envelope' in r, false)
        assert.deepEqual(list.find((r) => r.name === 'a'), { name: 'a', keyId: 'k1', createdAt: 2, updatedAt: 2 })
      })

      it('swap replaces only while the envelope is still the expected one, keeping createdAt', async () => {
        await store.secrets.put(secret('a', 'env-1', 1))
        assert.equal(await store.secrets.swap('a', Buffer.from('env-0'), { ...secret('a', 'env-x', 5), keyId: 'k2' }), false)
        assert.deepEqual((await store.secrets.get('a'))?.envelope, Buffer.from('env-1'))
        assert.equal(await store.secrets.swap('a', Buffer.from('env-1'), { ...secret('a', 'env-2', 5), keyId: 'k2' }), true)
        const got = await store.secrets.get('a')
        assert.deepEqual([got?.envelope, got?.keyId, got?.createdAt, got?.updatedAt], [Buffer.from('env-2'), 'k2', 1, 5])
        assert.equal(await store.secrets.swap('missing', Buffer.from('env-1'), secret('missing', 'e', 1)), false)
      })

      it('deletes, reporting whether the record existed', async () => {
        await store.secrets.put(secret('a', 'env-a', 1))
        assert.equal(await store.secrets.delete('a'), true)
        assert.equal(await store.secrets.delete('a'), false)
        assert.equal(await store.secrets.get('a'), undefined)
      })
    })

    describe('audit', () => {
      it('appends a chain, passing the last row to build', async () => {
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
      })

      it('rejects a row whose seq is not last.seq + 1, and appends nothing', async () => {
        await assert.rejects(store.audit.append(() => ({ seq: 2, hash: 'x', line: '{}' })))
        await store.audit.append(nextRow)
        await assert.rejects(store.audit.append(() => ({ seq: 1, hash: 'x', line: '{}' })))
        await assert.rejects(store.audit.append(() => ({ seq: 3, hash: 'x', line: '{}' })))
        assert.equal((await store.audit.last())?.seq, 1)
      })

      it('rolls back when build throws', async () => {
        await assert.rejects(
          store.audit.append(() => {
            throw new Error('boom')
          }),
          /boom/,
        )
        assert.equal(await store.audit.last(), undefined)
        await store.audit.append(nextRow)
        assert.equal((await store.audit.last())?.seq, 1)
      })

      it('reads in seq order, after a seq, in pages', async () => {
        for (let i = 0; i < 7; i++) await store.audit.append(nextRow)
        const all = await store.audit.read(0, 100)
        assert.deepEqual(all.map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7])
        assert.deepEqual((await store.audit.read(0, 3)).map((r) => r.seq), [1, 2, 3])
        assert.deepEqual((await store.audit.read(3, 3)).map((r) => r.seq), [4, 5, 6])
        assert.deepEqual((await store.audit.read(6, 3)).map((r) => r.seq), [7])
        assert.deepEqual(await store.audit.read(7, 3), [])
        assert.deepEqual(all[4], { seq: 5, hash: 'h5', line: '{"n":5}' })
      })
    })
  })
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

function secret(name: string, envelope: string, at: number): SecretRecord {
  return { name, envelope: Buffer.from(envelope), keyId: 'k1', createdAt: at, updatedAt: at }
}

function nextRow(last: AuditRow | undefined): AuditRow {
  const seq = (last?.seq ?? 0) + 1
  return { seq, hash: `h${seq}`, line: `{"n":${seq}}` }
}
