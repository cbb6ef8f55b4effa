import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startTestPostgres, type TestPostgres } from '../../test/helpers/postgres.ts'
import { PostgresStore } from '../store/postgres-store.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import type { CounterRepo } from '../store/store.ts'
import { CounterLeases, LEASE_IDLE_MS, MAX_LEASE } from './leases.ts'

const HOUR = 3_600_000

/** Two instances on one store: each its own leases, the store's counters shared. */
interface TwoInstances {
  readonly counters: CounterRepo
  readonly a: CounterLeases
  readonly b: CounterLeases
  close(): Promise<void>
}

function leaseContract(name: string, open: () => Promise<{ counters: [CounterRepo, CounterRepo]; close(): Promise<void> }>): void {
  describe(`counter leases on ${name}`, () => {
    const now = Date.now()
    let n = 0
    const counter = (limit: number) => ({ key: `session:ses_${name}_${n++}:requests`, limit, expiresAt: now + HOUR })
    const two = async (): Promise<TwoInstances> => {
      const opened = await open()
      const [first, second] = opened.counters
      return { counters: first, a: new CounterLeases(first, () => now), b: new CounterLeases(second, () => now), close: opened.close }
    }

    it('lets exactly 10 of 100 concurrent requests through a limit of 10, across two instances', async () => {
      const s = await two()
      try {
        const c = counter(10)
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? s.a : s.b).spendOne(c, now)))
        assert.equal(results.filter(Boolean).length, 10)
        assert.equal(await s.counters.used(c.key, now), 10)
        assert.deepEqual([s.a.leased(c.key), s.b.leased(c.key)], [0, 0], 'near the limit nothing is leased ahead')
      } finally {
        await s.close()
      }
    })

    it('leases in blocks far from the limit and still allows exactly the limit across two busy instances', async () => {
      const s = await two()
      try {
        const c = counter(1000)
        const results = await Promise.all(Array.from({ length: 1400 }, (_, i) => (i % 2 === 0 ? s.a : s.b).spendOne(c, now)))
        // One instance may finish its requests with units of its last block unspent while the other
        // finds the store at the limit (which one depends on how the store interleaves them): those
        // are still leased, never spent twice, and go back to the store when idle or closed.
        const stranded = s.a.leased(c.key) + s.b.leased(c.key)
        assert.equal(results.filter(Boolean).length + stranded, 1000)
        assert.ok(stranded < MAX_LEASE, `at most one block's rest is left unspent (${stranded})`)
        assert.equal(await s.counters.used(c.key, now), 1000)
        await s.a.close()
        await s.b.close()
        // Given back, the stranded units are the only ones a fresh instance can still spend.
        const fresh = new CounterLeases(s.counters, () => now)
        const more = await Promise.all(Array.from({ length: stranded + 5 }, () => fresh.spendOne(c, now)))
        assert.equal(more.filter(Boolean).length, stranded)
        await fresh.close()
        assert.equal(await s.counters.used(c.key, now), 1000)
      } finally {
        await s.close()
      }
    })

    it('spends from the lease without the store, counts leased units as used (a crash spends them), and gives them back on close', async () => {
      const s = await two()
      try {
        const c = counter(1_000_000)
        assert.equal(await s.a.spendOne(c, now), true)
        assert.equal(await s.counters.used(c.key, now), MAX_LEASE, 'one store write leased a block')
        for (let i = 1; i < MAX_LEASE; i++) assert.equal(await s.a.spendOne(c, now), true)
        assert.equal(await s.counters.used(c.key, now), MAX_LEASE, 'the block served its requests without another write')
        assert.equal(await s.a.spendOne(c, now), true)
        assert.equal(await s.counters.used(c.key, now), 2 * MAX_LEASE)
        await s.a.close()
        assert.equal(await s.counters.used(c.key, now), MAX_LEASE + 1, 'closing gave back the unspent units')
      } finally {
        await s.close()
      }
    })

    it('gives back the lease of a counter left idle', async () => {
      const opened = await open()
      let clock = now
      const leases = new CounterLeases(opened.counters[0], () => clock)
      try {
        const c = counter(1_000_000)
        assert.equal(await leases.spendOne(c, clock), true)
        clock += LEASE_IDLE_MS
        const deadline = Date.now() + 10_000
        while ((await opened.counters[0].used(c.key, clock)) !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
        assert.equal(await opened.counters[0].used(c.key, clock), 1)
        assert.equal(leases.leased(c.key), 0)
      } finally {
        await leases.close()
        await opened.close()
      }
    })
  })
}

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-leases-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
leaseContract('SQLite', async () => {
  const path = join(dir, `store-${files++}.db`)
  const stores = [SqliteStore.open(path), SqliteStore.open(path)]
  return { counters: [stores[0]!.counters, stores[1]!.counters], close: async () => stores.forEach((s) => s.close()) }
})

let server: TestPostgres
before(async () => {
  server = await startTestPostgres()
})
after(() => server.stop())
leaseContract('PostgreSQL', async () => {
  const db = await server.database()
  const stores = [await PostgresStore.open(db, { max: 2 }), await PostgresStore.open(db, { max: 2 })]
  return { counters: [stores[0]!.counters, stores[1]!.counters], close: async () => { for (const s of stores) await s.close() } }
})
