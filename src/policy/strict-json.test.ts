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
  ]
  for (const [what, input, message] of refused) {
    it(`refuses ${what}`, () => {
      const result = parse(input)
      assert.ok('invalid' in result && result.invalid.includes(message), JSON.stringify(result))
    })
  }

  it('does not mistake strings that look like keys for keys', () => {
    assert.ok('json' in parse('{"a":"b:","c":["a","a"],"d":"\\"a\\":"}'))
  })
})
