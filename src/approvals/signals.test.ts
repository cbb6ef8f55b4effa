import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startTestPostgres, type TestPostgres } from '../../test/helpers/postgres.ts'
import { silentLogger } from '../log.ts'
import type { PendingApproval } from '../model/approval.ts'
import { PostgresStore } from '../store/postgres-store.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import type { Store } from '../store/store.ts'
import { Approvals } from './approvals.ts'

/** Longer than any test here: a request that wakes did not wake by polling. */
const NO_POLL_MS = 600_000

function pending(id: string, now: number): PendingApproval {
  return {
    id, requestId: 'req_1', session: 'ses_0000000000000001', agent: 'a', user: 'u', workspace: 'w', task: 't', connector: 'api', rule: 'r',
    method: 'POST', host: 'api.example', path: '/x', summary: '{}', digest: `sha256:${'0'.repeat(64)}`, createdAt: now, expiresAt: now + 60_000,
  }
}

/** Two instances on one store (each its own store object and Approvals): a request parked on one, decided through the other. */
function signalled(name: string, open: () => Promise<[Store, Store]>): void {
  describe(`a parked request wakes on the store's signal, not the poll: ${name}`, () => {
    it('decided through another instance, the waiting request has its decision at once', async () => {
      const [first, second] = await open()
      const parkedOn = new Approvals({ repo: first.approvals, signals: first.approvalSignals, clock: Date.now, log: silentLogger, pollMs: NO_POLL_MS })
      const decidedOn = new Approvals({ repo: second.approvals, signals: second.approvalSignals, clock: Date.now, log: silentLogger, pollMs: NO_POLL_MS })
      try {
        const id = Approvals.newId()
        const waiting = parkedOn.wait(pending(id, Date.now()), undefined)
        const deadline = Date.now() + 10_000
        while ((await second.approvals.get(id)) === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
        const decidedAt = performance.now()
        await decidedOn.decide(id, { state: 'approved', approver: { id: 'kat_1', name: 'alice' }, reason: undefined, at: Date.now(), rememberUntil: undefined })
        const timeout = new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), 10_000).unref())
        const outcome = await Promise.race([waiting, timeout])
        assert.notEqual(outcome, 'timed out', 'no signal woke the request (its poll is 10 minutes)')
        assert.equal(typeof outcome === 'object' && outcome.approval.state, 'approved')
        assert.ok(performance.now() - decidedAt < 10_000)
      } finally {
        parkedOn.close()
        decidedOn.close()
        await first.close()
        await second.close()
      }
    })
  })
}

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-signals-'))
after(() => rmSync(dir, { recursive: true, force: true }))
signalled('SQLite, two store objects on one file in this process', async () => {
  const file = join(dir, 'keyvalet.db')
  return [SqliteStore.open(file), SqliteStore.open(file)]
})

let server: TestPostgres
before(async () => {
  server = await startTestPostgres()
})
after(() => server.stop())
signalled('PostgreSQL, through the change feed', async () => {
  const db = await server.database()
  const keptReads = { resyncMs: 250, graceMs: 30_000 }
  return [await PostgresStore.open(db, { max: 2, keptReads }), await PostgresStore.open(db, { max: 2, keptReads })]
})
