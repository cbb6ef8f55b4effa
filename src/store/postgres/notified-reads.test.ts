import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { KeyvaletError } from '../../errors.ts'
import { NotifiedReads } from './notified-reads.ts'

interface Row { readonly id: string; readonly v: number }

/** A NotifiedReads on a clock the test moves, and a "server" whose row the test changes. */
function setup(opts: { resyncMs?: number; graceMs?: number } = {}) {
  const clock = { now: 0 }
  const reads = new NotifiedReads({ resyncMs: opts.resyncMs ?? 100, graceMs: opts.graceMs ?? 1000, now: () => clock.now })
  const server = { row: { id: 'a', v: 1 } as Row | undefined, down: false, loads: 0 }
  const load = async (): Promise<Row | undefined> => {
    server.loads++
    if (server.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    return server.row
  }
  const read = () => reads.read('ka', (r: Row) => `row:${r.id}`, load)
  return { clock, reads, server, read, load }
}

describe('NotifiedReads', () => {
  it('keeps a read while listening and confirmed, until the change that names it', async () => {
    const { reads, server, read } = setup()
    reads.listening()
    assert.equal((await read())?.v, 1)
    server.row = { id: 'a', v: 2 }
    assert.equal((await read())?.v, 1, 'kept: the change was not notified yet')
    reads.changed('row:b')
    assert.equal((await read())?.v, 1, 'another row changed')
    reads.changed('row:a')
    assert.equal((await read())?.v, 2)
    assert.equal(server.loads, 2)
  })

  it('keeps nothing before it listens, and flushes everything when the LISTEN restarts', async () => {
    const { reads, server, read } = setup()
    await read()
    await read()
    assert.equal(server.loads, 2, 'not listening: every read goes to the server')
    reads.listening()
    await read()
    server.row = { id: 'a', v: 3 }
    reads.listening()
    assert.equal((await read())?.v, 3)
  })

  it('does not keep a read that was in flight when a change arrived', async () => {
    const { reads, server } = setup()
    reads.listening()
    let release: (row: Row) => void = () => {}
    const slow = reads.read('ka', (r: Row) => `row:${r.id}`, () => new Promise<Row>((resolve) => { release = resolve }))
    reads.changed('row:a')
    release({ id: 'a', v: 1 })
    assert.equal((await slow)?.v, 1)
    server.row = { id: 'a', v: 2 }
    assert.equal((await reads.read('ka', (r: Row) => `row:${r.id}`, async () => server.row))?.v, 2, 'the stale answer was not kept')
  })

  it('stops answering from kept reads when no heartbeat came back within 3 × resync, and again once one does', async () => {
    const { clock, reads, server, read } = setup({ resyncMs: 100 })
    reads.listening()
    await read()
    clock.now = 300
    assert.equal(reads.trusted, true)
    await read()
    assert.equal(server.loads, 1)
    clock.now = 301
    assert.equal(reads.trusted, false)
    await read()
    assert.equal(server.loads, 2, 'unconfirmed: the read went to the server')
    reads.confirmed(250)
    assert.equal(reads.trusted, true)
    await read()
    assert.equal(server.loads, 2)
  })

  it('while the server is unreachable: a kept read answers for the grace after it was last known current, then store_unavailable; an unkept one at once', async () => {
    const { clock, reads, server, read } = setup({ resyncMs: 100, graceMs: 1000 })
    reads.listening()
    await read()
    server.down = true
    clock.now = 1000
    assert.equal((await read())?.v, 1, 'within the grace')
    clock.now = 1001
    await assert.rejects(read(), (err: unknown) => err instanceof KeyvaletError && err.code === 'store_unavailable' && err.status === 503 && !err.message.includes('ECONNREFUSED'))
    await assert.rejects(reads.read('other', (r: Row) => `row:${r.id}`, async () => { throw Object.assign(new Error('x'), { code: 'CONNECTION_CLOSED' }) }), /cannot reach its store/)
    server.down = false
    assert.equal((await read())?.v, 1, 'resumes by itself')
  })

  it('lets a statement error through as it is', async () => {
    const { reads } = setup()
    await assert.rejects(reads.read('k', () => 'x', async () => { throw Object.assign(new Error('syntax'), { code: '42601' }) }), /syntax/)
  })
})
