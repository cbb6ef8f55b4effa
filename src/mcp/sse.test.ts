import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { EventStream, eventData, withData } from './sse.ts'

/** Feeds `chunks` in; returns what came out, one entry per push. */
async function run(chunks: readonly string[], rewrite: (event: Buffer) => Buffer = (e) => e, max = 1024): Promise<string[]> {
  const stream = new EventStream(rewrite, max)
  const out: string[] = []
  stream.on('data', (b: Buffer) => out.push(b.toString()))
  const done = new Promise<void>((resolve, reject) => stream.on('end', resolve).on('error', reject))
  for (const c of chunks) stream.write(Buffer.from(c))
  stream.end()
  await done
  return out
}

describe('EventStream', () => {
  const text = 'event: message\ndata: {"a":1}\n\n: keep-alive\n\ndata: x\r\ndata: y\r\n\r\nid: 3\rdata: z\r\r'
  it('hands on each event as soon as its blank line arrives, whatever the line endings', async () => {
    assert.deepEqual(await run([text]), ['event: message\ndata: {"a":1}\n\n', ': keep-alive\n\n', 'data: x\r\ndata: y\r\n\r\n', 'id: 3\rdata: z\r\r'])
  })
  it('gives the same events wherever the chunks split, a CRLF included', async () => {
    const whole = await run([text])
    for (let cut = 1; cut < text.length; cut++) {
      assert.deepEqual((await run([text.slice(0, cut), text.slice(cut)])).join('|'), whole.join('|'), `split at ${cut}`)
    }
  })
  it('gives the same events fed one byte at a time', async () => {
    assert.deepEqual(await run([...text]), await run([text]))
  })
  it('does not hold a complete event for the next chunk', async () => {
    const stream = new EventStream((e) => e, 1024)
    const seen: string[] = []
    stream.on('data', (b: Buffer) => seen.push(b.toString()))
    stream.write(Buffer.from('data: 1\n\ndata: 2'))
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(seen, ['data: 1\n\n'])
    stream.destroy()
  })
  it('rewrites each event, and passes an unfinished one at the end through the same rewrite', async () => {
    assert.deepEqual(await run(['data: a\n\ndata: b'], (e) => Buffer.from(e.toString().toUpperCase())), ['DATA: A\n\n', 'DATA: B'])
  })
  it('fails the stream on an event longer than the limit', async () => {
    await assert.rejects(run(['data: ' + 'x'.repeat(100)], (e) => e, 50), { code: 'upstream_response_invalid' })
  })
})

describe('eventData and withData', () => {
  it('joins data lines as a client reads them, and replaces them keeping the other fields', () => {
    assert.equal(eventData('id: 4\ndata: {"a":\ndata:1}\n\n'), '{"a":\n1}')
    assert.equal(eventData(': comment\n\n'), undefined)
    assert.equal(withData('event: message\r\nid: 4\r\ndata: {"a":\r\ndata:1}\r\n\r\n', '{"a":2}'), 'event: message\nid: 4\ndata: {"a":2}\n\n')
  })
})
