import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { KeyvaletError, OperatorError, type ErrorCode } from '../errors.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import { AdminTokens, digestAdminToken } from './tokens.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-admin-tokens-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const refusedWith = (code: ErrorCode) => (err: unknown) => err instanceof KeyvaletError && err.code === code

describe('AdminTokens', () => {
  let store: SqliteStore
  let now: number
  let tokens: AdminTokens
  beforeEach(() => {
    store = SqliteStore.open(join(root, `s${++n}`, 'keyvalet.db'))
    now = 1_700_000_000_000
    tokens = new AdminTokens(store.adminTokens, () => now)
  })
  afterEach(() => store.close())

  it('mints a kva_ token with 256 random bits, stores only its digest, and authenticates it as its actor', async () => {
    const { token, value } = await tokens.create({ name: 'orchestrator', role: 'operator' })
    assert.match(value, /^kva_[A-Za-z0-9_-]{43}$/)
    assert.match(token.id, /^kat_[0-9a-f]{16}$/)
    assert.deepEqual(await tokens.authenticate(value), { tokenId: token.id, name: 'orchestrator', role: 'operator' })
    const stored = await store.adminTokens.findByDigest(digestAdminToken(value) as Buffer)
    assert.ok(stored !== undefined && !JSON.stringify(stored).includes(value.slice(4)))
    assert.deepEqual((await tokens.list()).map((t) => t.id), [token.id])
  })

  it('refuses malformed and unknown tokens as admin_token_invalid', async () => {
    const { value } = await tokens.create({ name: 'a', role: 'admin' })
    const other = value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A')
    for (const junk of ['', 'kva_', `${value}x`, value.replace('kva_', 'kvt_'), other]) await assert.rejects(tokens.authenticate(junk), refusedWith('admin_token_invalid'), junk)
  })

  it('a revoked token is refused at once; an expiring one at expiresAt exactly', async () => {
    const revoked = await tokens.create({ name: 'r', role: 'auditor' })
    assert.equal(await tokens.revoke(revoked.token.id), true)
    await assert.rejects(tokens.authenticate(revoked.value), refusedWith('admin_token_revoked'))
    assert.equal(await tokens.revoke('kat_nope'), false)
    const expiring = await tokens.create({ name: 'e', role: 'auditor', ttlMs: 1000 })
    now += 999
    await tokens.authenticate(expiring.value)
    now += 1
    await assert.rejects(tokens.authenticate(expiring.value), refusedWith('admin_token_expired'))
  })

  it('checks the name, the role and the ttl', async () => {
    for (const bad of [{ name: '', role: 'admin' }, { name: 'two words', role: 'admin' }, { name: 'x', role: 'root' }, { name: 'x', role: 'admin', ttlMs: 0 }]) {
      await assert.rejects(tokens.create(bad), OperatorError, JSON.stringify(bad))
    }
    assert.deepEqual(await tokens.list(), [])
  })
})
