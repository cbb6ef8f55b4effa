import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BadTokenThrottle } from './throttle.ts'

describe('BadTokenThrottle', () => {
  it('closes an address after its free tries, for a time that doubles up to the cap; a good token clears it', () => {
    let now = 0
    const t = new BadTokenThrottle(() => now, { free: 2, baseMs: 1000, maxMs: 4000 })
    t.failed('a')
    t.failed('a')
    assert.equal(t.retryAfterMs('a'), 0)
    const waits = [1000, 2000, 4000, 4000].map(() => {
      t.failed('a')
      const wait = t.retryAfterMs('a')
      now += wait
      return wait
    })
    assert.deepEqual(waits, [1000, 2000, 4000, 4000])
    assert.equal(t.retryAfterMs('b'), 0, 'another address is not affected')
    t.failed('a')
    t.succeeded('a')
    assert.equal(t.retryAfterMs('a'), 0)
  })

  it('forgets a quiet address, and remembers at most maxAddresses, the oldest going first', () => {
    let now = 0
    const t = new BadTokenThrottle(() => now, { free: 0, baseMs: 1000, forgetMs: 10_000, maxAddresses: 100 })
    for (let i = 0; i < 1000; i++) t.failed(`10.0.${i >> 8}.${i & 255}`)
    assert.equal(t.size, 100)
    assert.equal(t.retryAfterMs('10.0.0.0'), 0, 'evicted')
    assert.equal(t.retryAfterMs('10.0.3.231'), 1000, 'the latest is kept')
    now += 10_001
    assert.equal(t.retryAfterMs('10.0.3.231'), 0)
    t.failed('10.0.3.231')
    assert.equal(t.retryAfterMs('10.0.3.231'), 1000, 'starts afresh: the first closing again')
  })
})
