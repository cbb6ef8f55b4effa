import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TokenCache } from './token-cache.ts'

describe('TokenCache', () => {
  it('100 concurrent gets of a missing token start exactly one fetch and all get its result', async () => {
    const cache = new TokenCache(() => 1_000, 0)
    let release: (v: string) => void = () => {}
    const fetched = new Promise<string>((r) => (release = r))
    const all = Array.from({ length: 100 }, () => cache.get('alice', async () => ({ value: await fetched, expiresAt: 10_000, label: 'x' })))
    release('tok-1')
    const tokens = await Promise.all(all)
    assert.equal(cache.fetches, 1)
    assert.ok(tokens.every((t) => t.value === 'tok-1'))
  })

  it('reuses a token until refreshBeforeMs before it expires, then fetches again', async () => {
    let now = 0
    const cache = new TokenCache(() => now, 100)
    let n = 0
    const fetch = async () => ({ value: `t${++n}`, expiresAt: now + 1_000, label: 'x' })
    assert.equal((await cache.get('k', fetch)).value, 't1')
    now = 899
    assert.equal((await cache.get('k', fetch)).value, 't1')
    now = 900
    assert.equal((await cache.get('k', fetch)).value, 't2')
  })

  it('a failed fetch reaches every waiter, is not cached, and the next get tries again', async () => {
    const cache = new TokenCache(() => 0, 0)
    const failing = () => Promise.reject(new Error('boom'))
    const results = await Promise.allSettled([cache.get('k', failing), cache.get('k', failing)])
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected'])
    assert.equal(cache.fetches, 1)
    assert.equal((await cache.get('k', async () => ({ value: 'ok', label: 'x' }))).value, 'ok')
  })

  it('invalidate drops only the token that was refused, not a newer one', async () => {
    const cache = new TokenCache(() => 0, 0)
    const old = await cache.get('k', async () => ({ value: 'old', expiresAt: 10, label: 'x' }))
    cache.invalidate('k', { value: 'other', label: 'x' })
    assert.equal((await cache.get('k', async () => ({ value: 'new', label: 'x' }))).value, 'old')
    cache.invalidate('k', old)
    assert.equal((await cache.get('k', async () => ({ value: 'new', label: 'x' }))).value, 'new')
  })
})
