import { randomBytes } from 'node:crypto'

/**
 * Where the WebSocket frames (RFC 6455 §5.2) of one direction of a relayed connection begin and
 * end, from their headers only (payloads are counted, never read or kept): so that keyvalet can
 * put a close frame of its own between two frames of the stream instead of cutting one in half.
 */
export class FrameBoundary {
  /** Bytes of the header under way (at most 14). */
  #header: number[] = []
  /** Payload bytes of the frame under way still to come. */
  #payloadLeft = 0

  /** True between two frames. */
  get atBoundary(): boolean {
    return this.#header.length === 0 && this.#payloadLeft === 0
  }

  /**
   * Follows `chunk`. With `stopAtBoundary`, stops where the frame under way ends: returns how many
   * bytes of the chunk belong to it (the chunk's length when it does not end within it).
   */
  feed(chunk: Buffer, stopAtBoundary = false): number {
    let at = 0
    while (at < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return at
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, chunk.length - at)
        this.#payloadLeft -= take
        at += take
        continue
      }
      this.#header.push(chunk[at++] ?? 0)
      const size = headerSize(this.#header)
      if (size !== undefined && this.#header.length === size) {
        this.#payloadLeft = payloadLength(this.#header)
        this.#header = []
      }
    }
    return at
  }
}

/** A frame's header length once its first two bytes are known. */
function headerSize(header: readonly number[]): number | undefined {
  if (header.length < 2) return undefined
  const second = header[1] ?? 0
  const length = second & 0x7f
  return (length === 126 ? 4 : length === 127 ? 10 : 2) + ((second & 0x80) !== 0 ? 4 : 0)
}

function payloadLength(header: readonly number[]): number {
  const length = (header[1] ?? 0) & 0x7f
  if (length < 126) return length
  const bytes = Buffer.from(header)
  if (length === 126) return bytes.readUInt16BE(2)
  const big = bytes.readBigUInt64BE(2)
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big)
}

/**
 * A close frame with a status code and a reason (at most 123 bytes of UTF-8). `masked`: as a
 * client sends it (to the upstream), with a random masking key; unmasked as a server sends it.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason, 'utf8').subarray(0, 123)])
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload])
  const key = randomBytes(4)
  const body = Buffer.from(payload.map((byte, i) => byte ^ (key[i % 4] ?? 0)))
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, body])
}
