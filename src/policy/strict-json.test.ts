import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseStrictJson } from './strict-json.ts'

const parse = (text: string | Buffer) => parseStrictJson(typeof text === 'string' ? Buffer.from(text) : text)

describe('parseStrictJson', () => {
  it('parses ordinary JSON', () => {
    assert.deepEqual(parse('{"title":"a","nested":{"title":"b"},"list":[{"k":1},{"k":2}]}'), {
      json: { title: 'a', nested: { title: 'b' }, list: [{ k: 1 }, { k: 2 }] },
    })
    assert.deepEqual(parse('"just a string"'), { json: 'just a string' })
  })

  const refused: [string, string | Buffer, string][] = [
    ['a duplicate key', '{"title":"safe","title":"evil"}', 'duplicate'],
    ['a duplicate key in a nested object', '{"a":{"b":1, "b" :2}}', 'duplicate'],
    ['a duplicate key spelled with an escape', '{"title":1,"\\u0074itle":2}', 'duplicate'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), 'UTF-8'],
    ['text that is not JSON', '{title: 1}', 'not valid JSON'],
    ['a byte-order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"title":"a"}')]), 'byte-order mark'],
    ['a UTF-16 byte-order mark', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{}')]), 'UTF-8'],
    ['a number too large for a double (JSON.parse makes it Infinity)', '{"arguments":{"n":[1,-1e400]}}', 'too large'],
    ['a number of 400 digits', `{"n":${'9'.repeat(400)}}`, 'too large'],
    ['arrays nested deeper than 128 levels', `${'['.repeat(129)}${']'.repeat(129)}`, 'deeper than 128'],
    ['objects nested deeper than 128 levels, deep enough to overflow a recursive walk', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`, 'deeper than 128'],
  ]
  for (const [what, input, message] of refused) {
    it(`refuses ${what}`, () => {
      const result = parse(input)
      assert.ok('invalid' in result && result.invalid.includes(message), JSON.stringify(result))
    })
  }

  it('accepts large numbers a double holds, and an exponent inside a string', () => {
    assert.deepEqual(parse('{"a":1e308,"b":-1.5E-400,"c":"1e400"}'), { json: { a: 1e308, b: -0, c: '1e400' } })
  })

  it('accepts 128 levels of nesting, and brackets inside strings do not count', () => {
    assert.ok('json' in parse(`${'['.repeat(128)}"[[[{{{"${']'.repeat(128)}`))
  })

  it('does not mistake strings that look like keys for keys', () => {
    assert.ok('json' in parse('{"a":"b:","c":["a","a"],"d":"\\"a\\":"}'))
  })
})
