import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as F from '../../../test/helpers/h2-frames.ts'
import { fieldRefusal, H2HeaderInspector } from './h2-header-inspector.ts'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const BOUNDS = { headerTableSize: 4096, maxFrameSize: 16_384, maxHeaderListBytes: 32_768, maxHeaderListPairs: 128 }
const get = (id: number, extra: readonly (readonly [string, string])[] = []): Buffer => F.request('a.test:443', `/s${id}`, extra)

/** Feeds `bytes` (after the preface and SETTINGS) in chunks of every size in `sizes`; calls `check` with each inspector. */
function eachChunking(bytes: Buffer, check: (inspector: H2HeaderInspector, resets: number) => void, sizes = [1, 2, 5, 9, 10, 64, 100_000]): void {
  const all = Buffer.concat([PREFACE, F.settings(), bytes])
  for (const size of sizes) {
    let resets = 0
    const inspector = new H2HeaderInspector(BOUNDS, () => resets++)
    for (let at = 0; at < all.length; at += size) inspector.inspect(all.subarray(at, at + size))
    check(inspector, resets)
  }
}

describe('fieldRefusal: the fields nghttp2 (RFC 9113 §8.2.1, Node 24 defaults) drops without resetting the stream', () => {
  it('values: control characters but HTAB, DEL, whitespace at either end; names: anything but lower-case token characters', () => {
    for (let byte = 0; byte < 256; byte++) {
      const c = String.fromCharCode(byte)
      const valueRefused = byte === 0x7f || (byte < 0x20 && byte !== 0x09)
      assert.equal(fieldRefusal('x-a', `a${c}b`)?.why, valueRefused ? 'value_control_character' : undefined, `value byte ${byte}`)
      const nameValid = /[!#$%&'*+\-.^_`|~0-9a-z]/.test(c)
      assert.equal(fieldRefusal(`x${c}a`, '1')?.why, nameValid ? undefined : 'name_invalid', `name byte ${byte}`)
    }
    assert.equal(fieldRefusal('x-a', ' b')?.why, 'value_whitespace')
    assert.equal(fieldRefusal('x-a', 'b\t')?.why, 'value_whitespace')
    assert.equal(fieldRefusal('x-a', 'b c')?.why, undefined)
    assert.equal(fieldRefusal('x-a', '')?.why, undefined)
    assert.equal(fieldRefusal('', '1')?.why, 'name_invalid')
    assert.equal(fieldRefusal('x-a', 'b\rc')?.field, 'x-a')
    assert.equal(fieldRefusal('x\ra', '1')?.field, undefined, 'an invalid name is never echoed')
  })
})

describe('H2HeaderInspector', () => {
  it('finds the refused field in a new stream, however the bytes are cut; a clean stream beside it is not refused', () => {
    const bytes = Buffer.concat([F.headers(1, get(1, [['x-a', 'b\r\nx-injected: 1']]), { endStream: true }), F.headers(3, get(3), { endStream: true })])
    eachChunking(bytes, (inspector) => {
      assert.equal(inspector.lost, false)
      assert.deepEqual(inspector.begin(1), { why: 'value_control_character', field: 'x-a' })
      assert.equal(inspector.begin(3), undefined)
    })
  })

  it('reads padded and prioritised HEADERS, and a block continued over CONTINUATION frames', () => {
    const block = get(1, [['x-long', 'v'.repeat(300)], ['x-a', 'b\0c']])
    const padded = Buffer.concat([Buffer.from([7]), Buffer.alloc(5), block.subarray(0, 100), Buffer.alloc(7)])
    const bytes = Buffer.concat([
      F.frame(F.FRAME.HEADERS, 0x8 | 0x20 | F.FLAG.END_STREAM, 1, padded),
      F.continuation(1, block.subarray(100, 250)),
      F.continuation(1, block.subarray(250), true),
    ])
    eachChunking(bytes, (inspector) => assert.deepEqual([inspector.lost, inspector.begin(1)?.why], [false, 'value_control_character']))
  })

  it('skips the payload of every other frame, and tells of each RST_STREAM as it reads it', () => {
    const bytes = Buffer.concat([F.data(1, Buffer.alloc(3000, 0x82)), F.windowUpdate(0, 100), F.rstStream(1, 8), F.rstStream(3, 8), F.headers(5, get(5, [['x-a', ' b']]), { endStream: true })])
    eachChunking(bytes, (inspector, resets) => {
      assert.equal(resets, 2)
      assert.equal(inspector.begin(5)?.why, 'value_whitespace')
    })
  })

  it('a stream that begins forgets the refusals of lower streams (reset by nghttp2, never begun)', () => {
    const bytes = Buffer.concat([F.headers(1, get(1, [['x-a', 'b\rc']]), { endStream: true }), F.headers(3, get(3), { endStream: true })])
    eachChunking(bytes, (inspector) => {
      assert.equal(inspector.begin(3), undefined)
      assert.equal(inspector.begin(1), undefined)
    }, [100_000])
  })

  it('trailers (a second HEADERS on a stream) are decoded to stay in step, and refuse nothing', () => {
    const bytes = Buffer.concat([F.headers(1, get(1)), F.headers(1, F.headerBlock([['x-t', 'a\rb']]), { endStream: true }), F.headers(3, get(3), { endStream: true })])
    eachChunking(bytes, (inspector) => assert.deepEqual([inspector.lost, inspector.begin(1), inspector.begin(3)], [false, undefined, undefined]))
  })

  const lost: [string, Buffer][] = [
    ['an HPACK index past the tables', F.headers(1, Buffer.concat([get(1), F.indexed(70)]), { endStream: true })],
    ['a block interrupted by another frame', Buffer.concat([F.headers(1, get(1), { endHeaders: false }), F.data(1, Buffer.from('x'))])],
    ['a CONTINUATION outside a block', F.continuation(1, get(1), true)],
    ['a HEADERS frame over the advertised frame size', F.headers(1, Buffer.concat([get(1), F.headerBlock([['x-a', 'v'.repeat(17_000)]])]), { endStream: true })],
    ['padding longer than the payload', F.frame(F.FRAME.HEADERS, 0x8 | F.FLAG.END_HEADERS, 1, Buffer.from([200, 0x82]))],
  ]
  for (const [what, bytes] of lost) {
    it(`${what}: the inspector stops following, and every later stream is refused as undecodable`, () => {
      eachChunking(Buffer.concat([F.headers(1, get(1), { endStream: true }), bytes.length > 0 ? rewriteStream(bytes, 3) : bytes]), (inspector) => {
        assert.equal(inspector.lost, true)
        assert.equal(inspector.begin(1), undefined, 'a stream read whole before is not refused')
        assert.equal(inspector.begin(3)?.why, 'undecodable')
      })
    })
  }

  it('an HPACK bomb (one large indexed field referenced a thousand times) is followed in step, and fields past the list bound are not judged', () => {
    const block = Buffer.concat([get(1), F.indexedLiteral('x-bomb', 'a'.repeat(4000)), ...Array.from({ length: 1000 }, () => F.indexed(62)), F.headerBlock([['x-late', 'b\rc']])])
    eachChunking(F.headers(1, block, { endStream: true }), (inspector) => {
      assert.equal(inspector.lost, false)
      // Past h2_max_header_list_bytes Node resets the stream (ENHANCE_YOUR_CALM) and it never begins: a field past the bound is not judged.
      assert.equal(inspector.begin(1), undefined)
    }, [100_000])
  })
})

/** The same frames with every stream id 1 made `id`. */
function rewriteStream(frames: Buffer, id: number): Buffer {
  const out = Buffer.from(frames)
  for (let pos = 0; pos + 9 <= out.length; pos += 9 + out.readUIntBE(pos, 3)) if ((out.readUInt32BE(pos + 5) & 0x7fffffff) === 1) out.writeUInt32BE(id, pos + 5)
  return out
}
