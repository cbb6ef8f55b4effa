import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { redactHeaderValue, Redactor } from './redactor.ts'

function through(chunks: string[], secrets: string[]): { out: string; count: number } {
  const redactor = new Redactor(secrets)
  const out = [...chunks.map((c) => redactor.push(Buffer.from(c))), redactor.flush()]
  return { out: Buffer.concat(out).toString(), count: redactor.count }
}

describe('Redactor', () => {
  const secret = 'sk-secret-value-1234'
  const masked = '*'.repeat(secret.length)

  it('masks a secret inside one chunk, keeping the length', () => {
    const r = through([`a ${secret} b ${secret}`], [secret])
    assert.equal(r.out, `a ${masked} b ${masked}`)
    assert.equal(r.count, 2)
  })

  it('masks a secret split at every possible point across two chunks', async () => {
    const text = `xx${secret}yy`
    for (let cut = 0; cut <= text.length; cut++) {
      const r = through([text.slice(0, cut), text.slice(cut)], [secret])
      assert.equal(r.out, `xx${masked}yy`, `cut at ${cut}`)
    }
  })

  it('masks a secret delivered one byte per chunk', () => {
    const r = through([...`<${secret}>`], [secret])
    assert.equal(r.out, `<${masked}>`)
  })

  it('holds nothing back when a chunk cannot be the start of a secret (streams are not delayed)', () => {
    const redactor = new Redactor([secret])
    assert.equal(redactor.push(Buffer.from('data: hello\n\n')).toString(), 'data: hello\n\n')
    assert.equal(redactor.push(Buffer.from('data: sk-sec')).toString(), 'data: ', 'only the possible prefix waits')
    assert.equal(redactor.push(Buffer.from('ret-value-1234 end')).toString(), `${masked} end`)
    assert.equal(redactor.flush().length, 0)
  })

  it('does not modify the chunks it is given', () => {
    const chunk = Buffer.from(`x ${secret} y`)
    const redactor = new Redactor([secret])
    assert.equal(redactor.push(chunk).toString(), `x ${masked} y`)
    assert.equal(chunk.toString(), `x ${secret} y`)
  })

  it('masks several secrets, including overlapping forms', () => {
    const r = through(['Basic dXNlcjpzZWNyZXQ= and secret'], ['secret', 'dXNlcjpzZWNyZXQ='])
    assert.equal(r.out, `Basic ${'*'.repeat(16)} and ******`)
  })

  it('masks header values', () => {
    assert.deepEqual(redactHeaderValue(`https://x/?t=${secret}`, [secret]), { value: `https://x/?t=${masked}`, count: 1 })
    assert.deepEqual(redactHeaderValue('nothing', [secret]), { value: 'nothing', count: 0 })
  })
})
