import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HpackDecoder, HpackError } from './hpack-decoder.ts'
import { huffmanDecode } from './hpack-huffman.ts'

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex')

function decode(decoder: HpackDecoder, block: Buffer): [string, string][] {
  const fields: [string, string][] = []
  decoder.write(block, (name, value) => fields.push([name, value]))
  decoder.end()
  return fields
}

const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT'
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT'
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'
const REQUESTS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
]
const RESPONSES: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', DATE_21], ['location', 'https://www.example.com']],
  [[':status', '307'], ['cache-control', 'private'], ['date', DATE_21], ['location', 'https://www.example.com']],
  [[':status', '200'], ['cache-control', 'private'], ['date', DATE_22], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]],
]

/** RFC 7541 Appendix C: each example's header blocks, decoded in order by one decoder, with the table size after each. */
const EXAMPLES: { name: string; tableSize: number; blocks: string[]; lists: [string, string][][]; sizes: number[] }[] = [
  { name: 'C.3 requests without Huffman', tableSize: 4096, lists: REQUESTS, sizes: [57, 110, 164], blocks: [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
  ] },
  { name: 'C.4 requests with Huffman', tableSize: 4096, lists: REQUESTS, sizes: [57, 110, 164], blocks: [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
  ] },
  { name: 'C.5 responses without Huffman, a 256-byte table with evictions', tableSize: 256, lists: RESPONSES, sizes: [222, 222, 215], blocks: [
    `4803 3330 3258 0770 7269 7661 7465 611d ${Buffer.from(DATE_21).toString('hex')} 6e17 ${Buffer.from('https://www.example.com').toString('hex')}`,
    '4803 3330 37c1 c0bf',
    `88c1 611d ${Buffer.from(DATE_22).toString('hex')} c05a 0467 7a69 7077 38 ${Buffer.from(COOKIE).toString('hex')}`,
  ] },
  { name: 'C.6 responses with Huffman, a 256-byte table with evictions', tableSize: 256, lists: RESPONSES, sizes: [222, 222, 215], blocks: [
    '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
    '4883 640e ffc1 c0bf',
    '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
  ] },
]

describe('HpackDecoder against RFC 7541 Appendix C', () => {
  it('C.2: a literal with indexing, without indexing, never indexed, and an indexed field', () => {
    const decoder = new HpackDecoder()
    assert.deepEqual(decode(decoder, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [['custom-key', 'custom-header']])
    assert.equal(decoder.tableSize, 55)
    assert.deepEqual(decode(decoder, hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']])
    assert.deepEqual(decode(decoder, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']])
    assert.deepEqual(decode(decoder, hex('82')), [[':method', 'GET']])
    assert.equal(decoder.tableSize, 55, 'only the first was indexed')
  })

  for (const example of EXAMPLES) {
    it(`${example.name}: the header lists and the table sizes`, () => {
      const decoder = new HpackDecoder(example.tableSize)
      example.blocks.forEach((block, i) => {
        assert.deepEqual(decode(decoder, hex(block)), example.lists[i], `block ${i + 1}`)
        assert.equal(decoder.tableSize, example.sizes[i], `table after block ${i + 1}`)
      })
    })

    it(`${example.name}: the same, each block cut into fragments at every byte`, () => {
      for (let cut = 1; cut < 8; cut++) {
        const decoder = new HpackDecoder(example.tableSize)
        example.blocks.forEach((block, i) => {
          const bytes = hex(block)
          const fields: [string, string][] = []
          for (let at = 0; at < bytes.length; at += cut) decoder.write(bytes.subarray(at, at + cut), (name, value) => fields.push([name, value]))
          decoder.end()
          assert.deepEqual(fields, example.lists[i])
        })
      }
    })
  }
})

describe('HpackDecoder decoding errors (what nghttp2 fails with COMPRESSION_ERROR)', () => {
  const cases: [string, string, number?][] = [
    ['index 0', '80'],
    ['an index past the tables', 'be'],
    ['a table size update over the advertised size', '3fe21f'],
    ['a table size update after a field', '82 20'],
    ['a block that ends inside a string', '400a 6375 73'],
    ['an integer of more than 32 bits', '0f ffffffffff7f'],
    ['a string over 64 KiB', '00 7f ff ff 03'],
    ['Huffman padding of 8 bits or more', '00 82 1fff 00'],
    ['Huffman padding that is not all ones', '00 81 18 00'],
    ['EOS inside a Huffman string', '00 84 ffffffff 00'],
  ]
  for (const [what, bytes, size] of cases) {
    it(what, () => {
      const decoder = new HpackDecoder(size ?? 4096)
      assert.throws(() => decode(decoder, hex(bytes)), HpackError)
    })
  }

  it('table size updates at the start of a block: to 0 evicts every entry', () => {
    const decoder = new HpackDecoder()
    decode(decoder, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))
    assert.throws(() => decode(decoder, hex('20 3f11 be')), HpackError, 'index 62 no longer exists')
    assert.equal(decoder.tableSize, 0)
  })
})

describe('huffmanDecode', () => {
  it('decodes with the code built from the bit lengths; up to 7 one bits of padding end a string', () => {
    // "no-cache", RFC 7541 C.4.2.
    assert.equal(huffmanDecode(hex('a8eb 1064 9cbf'), 0, 6).toString('latin1'), 'no-cache')
    assert.equal(huffmanDecode(Buffer.alloc(0), 0, 0).length, 0)
    assert.throws(() => huffmanDecode(hex('ff'), 0, 1))
  })
})
