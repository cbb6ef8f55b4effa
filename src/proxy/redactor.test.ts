import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, it } from 'node:test'
import { redactHeaderValue, Redactor } from './redactor.ts'

async function through(chunks: string[], secrets: string[]): Promise<{ out: string; count: number; pushes: number }> {
  const redactor = new Redactor(secrets)
  let pushes = 0
  redactor.on('data', () => pushes++)
  const out = await buffer(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(redactor))
  return { out: out.toString(), count: redactor.count, pushes }
}

describe('Redactor', () => {
  const secret = 'sk-secret-value-1234'
  const masked = '*'.repeat(secret.length)

  it('masks a secret inside one chunk, keeping the length', async () => {
    const r = await through([`a ${secret} b ${secret}`], [secret])
    assert.equal(r.out, `a ${masked} b ${masked}`)
    assert.equal(r.count, 2)
  })

  it('masks a secret split at every possible point across two chunks', async () => {
    const text = `xx${secret}yy`
    for (let cut = 0; cut <= text.length; cut++) {
      const r = await through([text.slice(0, cut), text.slice(cut)], [secret])
      assert.equal(r.out, `xx${masked}yy`, `cut at ${cut}`)
    }
  })

  it('masks a secret delivered one byte per chunk', async () => {
    const r = await through([...`<${secret}>`], [secret])
    assert.equal(r.out, `<${masked}>`)
  })

  it('holds nothing back when a chunk cannot be the start of a secret (streams are not delayed)', async () => {
    const redactor = new Redactor([secret])
    const seen: string[] = []
    redactor.on('data', (c: Buffer) => seen.push(c.toString()))
    redactor.write(Buffer.from('data: hello\n\n'))
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(seen, ['data: hello\n\n'])
    redactor.write(Buffer.from('data: sk-sec'))
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(seen, ['data: hello\n\n', 'data: '], 'only the possible prefix waits')
    redactor.end(Buffer.from('ret-value-1234 end'))
    await new Promise((r) => redactor.on('end', r).resume())
    assert.equal(seen.join(''), `data: hello\n\ndata: ${masked} end`)
  })

  it('masks several secrets, including overlapping forms', async () => {
    const r = await through(['Basic dXNlcjpzZWNyZXQ= and secret'], ['secret', 'dXNlcjpzZWNyZXQ='])
    assert.equal(r.out, `Basic ${'*'.repeat(16)} and ******`)
  })

  it('masks header values', () => {
    assert.deepEqual(redactHeaderValue(`https://x/?t=${secret}`, [secret]), { value: `https://x/?t=${masked}`, count: 1 })
    assert.deepEqual(redactHeaderValue('nothing', [secret]), { value: 'nothing', count: 0 })
  })
})
