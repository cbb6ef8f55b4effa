import { Transform, type TransformCallback } from 'node:stream'

/**
 * Replaces every occurrence of the given secrets in a byte stream with '*' of the same length, so
 * Content-Length stays right. Matches split across chunks are caught: a chunk's tail is held back
 * only while it could still be the start of a secret, so streams (SSE) are not delayed otherwise.
 */
export class Redactor extends Transform {
  readonly #needles: Buffer[]
  #carry: Buffer = Buffer.alloc(0)
  count = 0

  constructor(secrets: readonly string[]) {
    super()
    this.#needles = secrets.filter((s) => s.length > 0).map((s) => Buffer.from(s, 'utf8'))
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk])
    this.count += redactInPlace(buf, this.#needles)
    const keep = pendingPrefixLength(buf, this.#needles)
    this.#carry = keep === 0 ? Buffer.alloc(0) : Buffer.from(buf.subarray(buf.length - keep))
    if (buf.length > keep) this.push(buf.subarray(0, buf.length - keep))
    done()
  }

  override _flush(done: TransformCallback): void {
    if (this.#carry.length > 0) this.push(this.#carry)
    done()
  }
}

/** Masks every occurrence of each needle in `buf`; returns how many were masked. */
export function redactInPlace(buf: Buffer, needles: readonly Buffer[]): number {
  let count = 0
  for (const needle of needles) {
    let at = buf.indexOf(needle)
    while (at !== -1) {
      buf.fill(0x2a, at, at + needle.length)
      count++
      at = buf.indexOf(needle, at + needle.length)
    }
  }
  return count
}

/** Length of the longest suffix of `buf` that is a proper prefix of some needle. */
function pendingPrefixLength(buf: Buffer, needles: readonly Buffer[]): number {
  let best = 0
  for (const needle of needles) {
    const max = Math.min(needle.length - 1, buf.length)
    for (let len = max; len > best; len--) {
      if (buf.compare(needle, 0, len, buf.length - len) === 0) {
        best = len
        break
      }
    }
  }
  return best
}

/** Header values with secrets masked; returns the count so it reaches the audit record. */
export function redactHeaderValue(value: string, secrets: readonly string[]): { value: string; count: number } {
  let count = 0
  let out = value
  for (const secret of secrets) {
    if (secret.length === 0) continue
    const parts = out.split(secret)
    if (parts.length > 1) {
      count += parts.length - 1
      out = parts.join('*'.repeat(secret.length))
    }
  }
  return { value: out, count }
}
