import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, beforeEach, describe, it } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { KeyvaletError } from '../errors.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import { loadMasterKey } from '../vault/master-key.ts'
import { Vault } from '../vault/vault.ts'
import { ASSERTION_KEYS_SECRET, AssertionKeys } from './keys.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-assertion-'))
const stores: SqliteStore[] = []
after(() => {
  for (const s of stores) s.close()
  rmSync(root, { recursive: true, force: true })
})
let n = 0

const claims = { issuer: 'keyvalet', audience: 'crm', ttlSeconds: 60, subject: 'alice', claims: { act: { sub: 'bot' } } }

describe('AssertionKeys', () => {
  let vault: Vault
  let now: number
  /** A second instance on the same vault: another keyvalet, or the CLI. */
  let other: AssertionKeys
  let keys: AssertionKeys

  beforeEach(() => {
    const store = SqliteStore.open(join(root, `k${++n}`, 'keyvalet.db'))
    stores.push(store)
    now = 1_800_000_000_000
    vault = new Vault(store.secrets, loadMasterKey({ env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('hex') }, dataDir: root, create: false }), () => now)
    keys = new AssertionKeys(vault, () => now)
    other = new AssertionKeys(vault, () => now)
  })

  it('creates one key on first use, concurrently too, and signs verifiable tokens with it', async () => {
    const [a, b] = await Promise.all([keys.sign(claims), keys.sign(claims)])
    assert.equal(a.kid, b.kid)
    assert.notEqual(a.jti, b.jti)
    const jwks = await keys.jwks()
    assert.deepEqual(jwks.keys.map((k) => k.kid), [a.kid])
    const { payload, protectedHeader } = await jwtVerify(a.token, createLocalJWKSet(jwks), { algorithms: ['EdDSA'], issuer: 'keyvalet', audience: 'crm', currentDate: new Date(now) })
    assert.deepEqual(protectedHeader, { alg: 'EdDSA', typ: 'JWT', kid: a.kid })
    assert.equal(payload.sub, 'alice')
    assert.equal(payload.exp, now / 1000 + 60)
    assert.equal(payload.nbf, now / 1000)
  })

  it('publishes public members only', async () => {
    const jwks = await keys.jwks()
    assert.deepEqual(Object.keys(jwks.keys[0] ?? {}).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    assert.ok(!JSON.stringify(jwks).includes('"d"'))
  })

  it('after a rotation elsewhere, signs with the new key and publishes both until the overlap ends', async () => {
    const before = await keys.sign(claims)
    const rotated = await other.rotate(3_600_000)
    assert.deepEqual(rotated.retiring, [{ kid: before.kid, retireAt: now + 3_600_000 }])
    const afterwards = await keys.sign(claims)
    assert.equal(afterwards.kid, rotated.active)
    assert.notEqual(afterwards.kid, before.kid)
    const jwks = await keys.jwks()
    assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [before.kid, rotated.active].sort())
    await jwtVerify(before.token, createLocalJWKSet(jwks), { currentDate: new Date(now) })

    now += 3_600_000
    assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [rotated.active], 'dropped once the overlap ended')
    const again = await other.rotate(60_000)
    const stored = JSON.parse((await vault.open(ASSERTION_KEYS_SECRET)).toString('utf8')) as { kid: string; state: string }[]
    assert.deepEqual(stored.map((k) => [k.kid, k.state]), [[rotated.active, 'retiring'], [again.active, 'active']], 'the next rotate removes it from the record')
    assert.equal(decodeProtectedHeader((await keys.sign(claims)).token).kid, again.active)
  })

  it('publishes a new key ahead: the old key signs until it is due, then the new one, and the old stays published for the overlap after that', async () => {
    const before = await keys.sign(claims)
    const rotated = await other.rotate(600_000, 300_000)
    assert.equal(rotated.activateAt, now + 300_000)
    assert.deepEqual(rotated.retiring, [{ kid: before.kid, retireAt: now + 900_000 }])
    assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid).sort(), [before.kid, rotated.active].sort(), 'published at once')
    assert.equal((await keys.sign(claims)).kid, before.kid, 'not signing before it is due')
    now += 300_000
    assert.equal((await keys.sign(claims)).kid, rotated.active, 'signing once due')
    now += 600_000
    assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [rotated.active], 'the old key drops out after the overlap')
  })

  it('a rotation with nothing signing yet signs at once, whatever the publish-ahead', async () => {
    const { active, activateAt } = await other.rotate(0, 300_000)
    assert.equal(activateAt, now)
    assert.equal((await keys.sign(claims)).kid, active)
  })

  it('rotating with no overlap drops the old key at once', async () => {
    const first = await keys.sign(claims)
    const { active, retiring } = await keys.rotate(0)
    assert.deepEqual(retiring, [])
    assert.deepEqual((await keys.jwks()).keys.map((k) => k.kid), [active])
    assert.notEqual(active, first.kid)
  })

  it('fails closed on a malformed record', async () => {
    await vault.put(ASSERTION_KEYS_SECRET, Buffer.from('[{"kid":"x"}]'))
    await assert.rejects(keys.sign(claims), (err: unknown) => err instanceof KeyvaletError && err.code === 'credential_unavailable' && err.detail?.why === 'record has a malformed key')
  })
})
