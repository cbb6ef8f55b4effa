import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { KeyvaletError, OperatorError, type ErrorCode } from '../errors.ts'
import type { Grant } from '../model/policy.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import { MAX_TTL_MS, Sessions } from './sessions.ts'
import { mintTaskKey } from './task-key.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-sessions-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0

const grants: Grant[] = [{ connector: 'github', maxSeverity: 'read', rules: undefined }]
const refusedWith = (code: ErrorCode) => (err: unknown) => err instanceof KeyvaletError && err.code === code

describe('Sessions', () => {
  let store: SqliteStore
  let now: number
  let sessions: Sessions
  const base = { agent: 'agent-1', user: 'alice@example.com', workspace: 'ws-1', grants, ttlMs: 60_000 }

  beforeEach(() => {
    store = SqliteStore.open(join(root, `s${++n}`, 'keyvalet.db'))
    now = 1_700_000_000_000
    sessions = new Sessions(store.sessions, () => now)
  })
  afterEach(() => store.close())

  it('creates a session and authenticates its key', async () => {
    const { session, key } = await sessions.create(base)
    assert.match(session.id, /^ses_[0-9a-f]{16}$/)
    assert.match(session.task, /^tsk_/)
    assert.equal(session.expiresAt, now + 60_000)
    assert.equal('keyHash' in session, false)
    assert.deepEqual(await sessions.authenticate(key), session)
    assert.deepEqual(await sessions.get(session.id), session)
    assert.deepEqual((await sessions.list()).map((s) => s.id), [session.id])
  })

  it('keeps an explicit task id', async () => {
    const { session } = await sessions.create({ ...base, task: 'ticket-42' })
    assert.equal(session.task, 'ticket-42')
  })

  it('a malformed key is task_key_malformed; one character off fails the checksum', async () => {
    const { key } = await sessions.create(base)
    const last = key.at(-1) === 'a' ? 'b' : 'a'
    await assert.rejects(sessions.authenticate(key.slice(0, -1) + last), refusedWith('task_key_malformed'))
    const mid = 20
    const swapped = key.slice(0, mid) + (key[mid] === 'Z' ? 'Y' : 'Z') + key.slice(mid + 1)
    await assert.rejects(sessions.authenticate(swapped), refusedWith('task_key_malformed'))
    for (const junk of ['', 'Bearer x', 'kvt_short', key + 'x']) {
      await assert.rejects(sessions.authenticate(junk), refusedWith('task_key_malformed'))
    }
  })

  it('a well-formed but unknown key is task_key_invalid', async () => {
    await sessions.create(base)
    await assert.rejects(sessions.authenticate(mintTaskKey().key), refusedWith('task_key_invalid'))
  })

  it('revocation takes effect on the very next call', async () => {
    const { session, key } = await sessions.create(base)
    await sessions.authenticate(key)
    now += 10
    assert.equal(await sessions.revoke(session.id), true)
    await assert.rejects(sessions.authenticate(key), refusedWith('task_key_revoked'))
    now += 10
    assert.equal(await sessions.revoke(session.id), true)
    assert.equal((await sessions.get(session.id))?.revokedAt, now - 10)
    assert.equal(await sessions.revoke('ses_0000000000000000'), false)
  })

  it('expires at expiresAt exactly', async () => {
    const { key } = await sessions.create(base)
    now += 59_999
    await sessions.authenticate(key)
    now += 1
    await assert.rejects(sessions.authenticate(key), refusedWith('task_key_expired'))
  })

  it('revoked wins over expired', async () => {
    const { session, key } = await sessions.create(base)
    await sessions.revoke(session.id)
    now += 120_000
    await assert.rejects(sessions.authenticate(key), refusedWith('task_key_revoked'))
  })

  it('refusals carry no key material', async () => {
    const { key } = await sessions.create(base)
    now += 120_000
    const err = await sessions.authenticate(key).catch((e: unknown) => e)
    assert.ok(err instanceof KeyvaletError)
    assert.equal(JSON.stringify({ m: err.message, d: err.detail }).includes(key), false)
  })

  it('validates identifiers and ttl', async () => {
    const bad: Partial<typeof base & { task: string }>[] = [
      { agent: '' },
      { user: 'alice smith' },
      { workspace: 'ws\n1' },
      { task: 'x'.repeat(129) },
      { agent: 'tab\there' },
      { ttlMs: 0 },
      { ttlMs: -1 },
      { ttlMs: MAX_TTL_MS + 1 },
      { ttlMs: Number.NaN },
    ]
    for (const override of bad) {
      await assert.rejects(sessions.create({ ...base, ...override }), OperatorError, JSON.stringify(override))
    }
    await sessions.create({ ...base, task: 'x'.repeat(128), ttlMs: MAX_TTL_MS })
    assert.equal((await sessions.list()).length, 1)
  })
})
