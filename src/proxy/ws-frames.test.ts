import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { closeFrame, FrameBoundary } from './ws-frames.ts'

/** A frame as RFC 6455 lays it out: FIN + opcode, the length in 7, 7+16 or 7+64 bits, a masking key when masked. */
function frame(payloadLength: number, masked: boolean): Buffer {
  const length = payloadLength < 126 ? [payloadLength] : payloadLength < 65536 ? [126, payloadLength >> 8, payloadLength & 0xff] : [127, 0, 0, 0, 0, (payloadLength >>> 24) & 0xff, (payloadLength >> 16) & 0xff, (payloadLength >> 8) & 0xff, payloadLength & 0xff]
  const first = length[0] ?? 0
  return Buffer.concat([Buffer.from([0x82, (masked ? 0x80 : 0) | first, ...length.slice(1)]), masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), Buffer.alloc(payloadLength, 7)])
}

describe('FrameBoundary', () => {
  const frames = [frame(0, false), frame(5, true), frame(125, false), frame(300, true), frame(70_000, false)]
  const stream = Buffer.concat(frames)
  const ends = frames.reduce<number[]>((acc, f) => [...acc, (acc.at(-1) ?? 0) + f.length], [])

  it('is at a boundary exactly where each frame ends, however the stream is cut into chunks', () => {
    for (const size of [1, 2, 3, 7, 13, 1000, stream.length]) {
      const boundary = new FrameBoundary()
      const seen: number[] = []
      for (let at = 0; at < stream.length; at += size) {
        const chunk = stream.subarray(at, at + size)
        for (let i = 0; i < chunk.length; i++) {
          boundary.feed(chunk.subarray(i, i + 1))
          if (boundary.atBoundary) seen.push(at + i + 1)
        }
      }
      assert.deepEqual(seen, ends, `chunks of ${size}`)
    }
  })

  it('stops at the end of the frame under way when asked', () => {
    const boundary = new FrameBoundary()
    boundary.feed(stream.subarray(0, ends[0]! + 3)) // into the second frame's header
    assert.equal(boundary.atBoundary, false)
    assert.equal(boundary.feed(stream.subarray(ends[0]! + 3), true), ends[1]! - ends[0]! - 3)
    assert.equal(boundary.atBoundary, true)
  })
})

describe('closeFrame', () => {
  it('carries the code and reason, masked toward an upstream', () => {
    assert.deepEqual([...closeFrame(1008, 'budget_exhausted', false).subarray(0, 4)], [0x88, 18, 0x03, 0xf0])
    const masked = closeFrame(1008, 'budget_exhausted', true)
    assert.equal(masked[1], 0x80 | 18)
    const key = masked.subarray(2, 6)
    const payload = Buffer.from(masked.subarray(6).map((b, i) => b ^ (key[i % 4] ?? 0)))
    assert.deepEqual([payload.readUInt16BE(0), payload.subarray(2).toString()], [1008, 'budget_exhausted'])
  })
})
