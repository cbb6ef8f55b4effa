import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { SqliteStore } from '../store/sqlite-store.ts'
import { pipeLiveStream } from './live-stream.ts'

test('a subscriber that stops reading is dropped with a final event, while appends go on unhindered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-live-'))
  const store = SqliteStore.open(join(dir, 'keyvalet.db'))
  const listeners = new Set<() => void>()
  const ended: Promise<void>[] = []
  const server = createServer((_req, res) => {
    const ac = new AbortController()
    res.once('close', () => ac.abort())
    ended.push(pipeLiveStream(res, ac.signal, {
      repo: store.audit, filter: { agent: 'bot' }, after: 0, minIntervalMs: 5, pollMs: 50, maxBufferedBytes: 256 * 1024, stallMs: 300,
      onCommitted: (l) => (listeners.add(l), () => void listeners.delete(l)),
    }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const socket = connect({ port, host: '127.0.0.1' })
  socket.write(`GET /stream HTTP/1.1\r\nHost: x\r\n\r\n`)
  socket.pause() // reads nothing from here on
  try {
    const padding = 'x'.repeat(4000)
    let appended = 0
    const started = Date.now()
    // Bounded: 2,000 records of ~4 KB, far more than the socket and the 256 KiB allowance hold.
    for (let i = 0; i < 2000; i++) {
      const seq = i + 1
      await store.audit.append([{ instance: 'ins_a', chainSeq: seq, hash: `h${seq}`, line: JSON.stringify({ seq, padding }), facets: { time: new Date().toISOString(), session: null, agent: 'bot', user: null, workspace: null, task: null, connector: null, decision: 'allow', error: null, mode: 'gateway', phase: null } }])
      appended++
      if (i % 100 === 0) for (const l of listeners) l()
    }
    assert.equal(appended, 2000)
    assert.ok(Date.now() - started < 20_000, 'appending never waited for the subscriber')
    for (let i = 0; i < 200 && ended.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
    await Promise.race([ended[0], new Promise((_, reject) => setTimeout(() => reject(new Error('the subscriber was never dropped')), 10_000))])
    // What the client finds once it reads again: records, then the final event, then the end.
    socket.resume()
    const text = await new Promise<string>((resolve) => {
      let all = ''
      socket.on('data', (c: Buffer) => {
        all += c.toString()
        if (/event: dropped\ndata: [^\n]*\n\n/.test(all)) resolve(all)
      })
      socket.on('close', () => resolve(all))
      setTimeout(() => { socket.destroy(); resolve(all) }, 5000)
    })
    const dropped = /event: dropped\ndata: (\{[^\n]*\})/.exec(text)
    assert.ok(dropped !== null, 'the last event says the subscriber was dropped')
    const lastSeq = (JSON.parse(dropped[1] as string) as { reason: string; last_seq: number })
    assert.equal(lastSeq.reason, 'slow_consumer')
    assert.ok(lastSeq.last_seq > 0 && lastSeq.last_seq < 2000, `dropped at ${lastSeq.last_seq}, long before the end`)
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1), 'the records it got came in order, none twice')
  } finally {
    socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
