import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formsOf, oracleMask, spellings } from '../../test/helpers/redaction-oracle.ts'
import { MaskPatterns, MIN_BASE64_VALUE } from './patterns.ts'
import { maskText, Redactor } from './redactor.ts'

/** Seeded PRNG (mulberry32): the random cases are the same on every run. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The redactor's output for `chunks` (latin1 text), and its count. */
function through(patterns: MaskPatterns, chunks: readonly Buffer[]): { out: string; count: number; parts: Buffer[] } {
  const redactor = new Redactor(patterns)
  const parts: Buffer[] = []
  for (const chunk of chunks) redactor.push(chunk, (b) => parts.push(b))
  redactor.flush((b) => parts.push(b))
  return { out: Buffer.concat(parts).toString('latin1'), count: redactor.count, parts }
}

const mask = (text: string): string => '*'.repeat(Buffer.byteLength(text, 'latin1'))

describe('Redactor: every encoding of every value', () => {
  const secret = 's3cr3t/+ valué&"'
  const patterns = MaskPatterns.of([secret])
  const everyByte = [...Buffer.from(secret)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
  const examples: [string, string][] = [
    ['raw', secret],
    ['percent, upper case', encodeURIComponent(secret)],
    ['percent, lower case', encodeURIComponent(secret).toLowerCase()],
    ['percent, every byte, lower case', everyByte],
    ['percent, mixed case', encodeURIComponent(secret).replace('%2F', '%2f')],
    ['form encoding', new URLSearchParams({ s: secret }).toString().slice(2)],
    ['JSON', JSON.stringify(secret).slice(1, -1)],
    ['JSON with escaped slashes (PHP)', JSON.stringify(secret).slice(1, -1).replaceAll('/', '\\/')],
    ['JSON \\u escapes, lower case', [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')],
    ['JSON \\u escapes, upper case', [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`).join('')],
    ['HTML references', [...secret].map((c) => `&#${c.codePointAt(0)};`).join('')],
    ['XML escaping', secret.replace('&', '&amp;').replace('"', '&quot;')],
    ['base64', Buffer.from(secret).toString('base64').replace(/=+$/, '')],
    ['base64url', Buffer.from(secret).toString('base64url')],
  ]
  for (const [what, echo] of examples) {
    it(`masks the ${what} form, in one chunk and split at every byte`, () => {
      const text = Buffer.from(`<${echo}>`, 'utf8').toString('latin1')
      const whole = through(patterns, [Buffer.from(text, 'latin1')])
      assert.equal(whole.out, `<${mask(text.slice(1, -1))}>`)
      assert.equal(whole.count, 1)
      for (let cut = 0; cut <= text.length; cut++) {
        const split = through(patterns, [Buffer.from(text.slice(0, cut), 'latin1'), Buffer.from(text.slice(cut), 'latin1')])
        assert.equal(split.out, whole.out, `cut at ${cut}`)
      }
    })
  }

  it('masks base64 of the value inside a larger base64 text, at each of the three alignments', () => {
    const value = 'ghp_0123456789abcdefghij'
    const p = MaskPatterns.of([value])
    for (const before of ['', 'x', 'xy', 'xyz']) {
      for (const alphabet of ['base64', 'base64url'] as const) {
        const blob = Buffer.from(`{"authorization":"Bearer ${before}${value}","more":"data"}`).toString(alphabet)
        const { text } = maskText(p, blob, 'latin1')
        assert.notEqual(text, blob)
        const starts = Math.ceil(((25 + before.length) * 8) / 6)
        const ends = Math.ceil(((25 + before.length + value.length) * 8) / 6)
        assert.equal(text.slice(starts, ends), '*'.repeat(ends - starts), `${alphabet}, ${before.length} bytes before`)
        assert.equal(text.slice(0, starts - 1), blob.slice(0, starts - 1), 'what comes before is kept')
      }
    }
  })

  it('masks a Basic credential whole (base64 of user:secret)', () => {
    const p = MaskPatterns.of(['tok-123456', 'x-access-token:tok-123456'])
    const basic = Buffer.from('x-access-token:tok-123456').toString('base64')
    const padding = basic.length - basic.replace(/=+$/, '').length
    assert.deepEqual(maskText(p, `Authorization: Basic ${basic}`, 'latin1'), { text: `Authorization: Basic ${'*'.repeat(basic.length - padding)}${'='.repeat(padding)}`, count: 1 })
  })

  it('masks each text on its own: what one text left half-matched or held back never reaches the next (one Redactor is reused)', () => {
    const p = MaskPatterns.of(['tok-123456'])
    assert.deepEqual(maskText(p, 'head tok-12', 'latin1'), { text: 'head tok-12', count: 0 })
    assert.deepEqual(maskText(p, '3456 tail', 'latin1'), { text: '3456 tail', count: 0 })
    assert.deepEqual(maskText(p, 'end tok-1234', 'utf8', 8), { text: 'end ********', count: 1 })
    assert.deepEqual(maskText(p, '56 and tok-123456', 'latin1'), { text: `56 and ${'*'.repeat(10)}`, count: 1 })
    assert.deepEqual(maskText(p, 'x %74ok-123456', 'latin1'), { text: `x ${'*'.repeat(12)}`, count: 1 })
    assert.deepEqual(maskText(p, 'plain', 'latin1'), { text: 'plain', count: 0 })
  })

  it('leaves unrelated text and other escapes alone', () => {
    const text = 'a %2f b \\/ c \\u0041 d &amp; e s3cr3t/+ valu% f'
    assert.deepEqual(maskText(patterns, text, 'latin1'), { text, count: 0 })
  })
})

describe('Redactor: agrees with a brute-force model on random text and random chunking', () => {
  const CHARS = 'aZ09/+ %\\&"<>\'~*-_.=é😀'
  const NOISE = 'abcdefABCDEF0123456789%\\u&#x;+/=-_ "'

  it('on 1,200 seeded cases', () => {
    const rand = random(20260509)
    const pick = <T>(items: ArrayLike<T>): T => items[Math.floor(rand() * items.length)] as T
    for (let round = 0; round < 30; round++) {
      const length = 6 + Math.floor(rand() * 8)
      const secret = Array.from({ length }, () => (rand() < 0.6 ? pick('abcdefghijklmnopqrstuvwxyz0123456789') : pick([...CHARS]))).join('')
      const values = rand() < 0.5 ? [secret] : [secret, `user:${secret}`]
      const patterns = MaskPatterns.of(values)
      const forms = values.flatMap((v) => formsOf(v, MIN_BASE64_VALUE))
      const spell = (char: string): string => pick(rand() < 0.5 ? [Buffer.from(char, 'utf8').toString('latin1')] : spellings(char))
      for (let sample = 0; sample < 40; sample++) {
        let text = ''
        for (let part = 0; part < 4; part++) {
          text += Array.from({ length: Math.floor(rand() * 12) }, () => pick(NOISE)).join('')
          const kind = rand()
          if (kind < 0.35) text += [...secret].map(spell).join('')
          else if (kind < 0.7) {
            const blob = Buffer.concat([Buffer.from('x'.repeat(Math.floor(rand() * 4))), Buffer.from(pick(values)), Buffer.from('yz'.slice(0, Math.floor(rand() * 3)))])
            text += [...blob.toString(rand() < 0.5 ? 'base64' : 'base64url')].map((c) => (rand() < 0.2 ? spell(c) : c)).join('')
          } else text += [...secret.slice(0, Math.floor(rand() * secret.length))].map(spell).join('') // a near miss
        }
        const bytes = Buffer.from(text, 'latin1')
        const cuts = [...new Set(Array.from({ length: Math.floor(rand() * 6) }, () => Math.floor(rand() * (bytes.length + 1))))].sort((a, b) => a - b)
        const chunks = [0, ...cuts].map((from, k) => bytes.subarray(from, [...cuts, bytes.length][k]))
        const expected = oracleMask(text, forms)
        assert.equal(through(patterns, chunks).out, expected, `secret ${JSON.stringify(secret)} text ${JSON.stringify(text)} cuts ${cuts.join(',')}`)
        if (sample % 10 === 0) assert.equal(through(patterns, [...bytes].map((b) => Buffer.from([b]))).out, expected, 'one byte per chunk')
        // Whole strings (the audit's and the headers' path), whose quick test reads the characters.
        assert.equal(maskText(patterns, text, 'latin1').text, expected, `maskText: secret ${JSON.stringify(secret)} text ${JSON.stringify(text)}`)
      }
    }
  })
})

describe('Redactor: streaming behaviour', () => {
  const secret = 'sk-secret-value-1234'
  const patterns = MaskPatterns.of([secret])

  it('hands a chunk with nothing to mask on as it is: the same buffer, not a copy', () => {
    const redactor = new Redactor(patterns)
    const chunk = Buffer.from('data: {"text":"hello world"}\n\n')
    const parts: Buffer[] = []
    redactor.push(chunk, (b) => parts.push(b))
    assert.equal(parts.length, 1)
    assert.equal(parts[0], chunk)
  })

  it('holds back only what may begin an occurrence, so streams are not delayed', () => {
    const redactor = new Redactor(patterns)
    const sent: string[] = []
    const push = (text: string): void => redactor.push(Buffer.from(text), (b) => sent.push(b.toString()))
    push('data: hello\n\n')
    assert.deepEqual(sent, ['data: hello\n\n'])
    push('data: sk-sec')
    assert.deepEqual(sent.slice(1), ['data: '], 'only the possible beginning waits')
    push('ret-value-1234 end')
    assert.equal(sent.slice(2).join(''), `${'*'.repeat(secret.length)} end`)
    redactor.flush((b) => sent.push(b.toString()))
    assert.equal(sent.join(''), `data: hello\n\ndata: ${'*'.repeat(secret.length)} end`)
  })

  it('holds back an unfinished escape until the next chunk tells what it is', () => {
    const r = through(patterns, [Buffer.from('x sk%2'), Buffer.from('Dsecret-value-1234 %'), Buffer.from('2')])
    assert.equal(r.out, `x ${'*'.repeat(22)} %2`)
  })

  it('does not modify the chunks it is given', () => {
    const chunk = Buffer.from(`x ${secret} y`)
    assert.equal(through(patterns, [chunk]).out, `x ${'*'.repeat(secret.length)} y`)
    assert.equal(chunk.toString(), `x ${secret} y`)
  })

  it('counts occurrences; overlapping forms of one occurrence count once', () => {
    const p = MaskPatterns.of(['secret', 'user:secret'])
    assert.equal(through(p, [Buffer.from('user:secret and secret and c2VjcmV0')]).count, 3)
  })

  it('masks an occurrence cut short by the end only when asked, from the given length', () => {
    assert.equal(maskText(patterns, 'value: sk-secret-val', 'latin1').text, 'value: sk-secret-val')
    assert.equal(maskText(patterns, 'value: sk-secret-val', 'latin1', 8).text, `value: ${'*'.repeat(13)}`)
    assert.equal(maskText(patterns, 'value: sk-sec', 'latin1', 8).text, 'value: sk-sec')
  })

  it('masks nothing with no values, and ignores empty ones', () => {
    const chunk = Buffer.from('anything')
    const none = MaskPatterns.of([''])
    assert.ok(none.empty)
    assert.equal(through(none, [chunk]).out, 'anything')
  })
})
