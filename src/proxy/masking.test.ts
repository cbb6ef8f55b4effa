import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MaskPatterns } from '../redact/patterns.ts'
import { Redactor } from '../redact/redactor.ts'
import { random } from '../../test/helpers/fuzz.ts'
import { Masking } from './respond.ts'

describe('Masking: a Redactor begun only where a form may begin', () => {
  it('masks exactly as a Redactor over the whole stream, whatever the chunking', () => {
    const secret = 'sk-live-0123456789abcdef'
    const patterns = MaskPatterns.of([secret])
    const forms = [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64'), JSON.stringify(secret).slice(1, -1), 's', 'sk-', '%73k']
    const filler = ['{"id":42,"name":"item"}', 'x'.repeat(50), '\n', 'plain text ', '%', '\\u00', '&#']
    const r = random(11)
    const next = r.next
    const pick = r.pick
    for (let round = 0; round < 1500; round++) {
      let text = ''
      for (let i = 0, n = 1 + Math.floor(next() * 6); i < n; i++) text += next() < 0.4 ? pick(forms) : pick(filler)
      const bytes = Buffer.from(text, 'latin1')
      const chunks: Buffer[] = []
      for (let at = 0; at < bytes.length;) {
        const size = 1 + Math.floor(next() * 12)
        chunks.push(bytes.subarray(at, at + size))
        at += size
      }
      const expected: Buffer[] = []
      const redactor = new Redactor(patterns)
      for (const c of chunks) redactor.push(c, (b) => expected.push(b))
      redactor.flush((b) => expected.push(b))
      const got: Buffer[] = []
      const masking = new Masking(patterns)
      for (const c of chunks) masking.push(c, (b) => got.push(b))
      masking.flush((b) => got.push(b))
      assert.equal(Buffer.concat(got).toString('latin1'), Buffer.concat(expected).toString('latin1'), JSON.stringify(chunks.map((c) => c.toString('latin1'))))
      assert.equal(masking.count, redactor.count)
    }
  })
})
