/**
 * Replaces every occurrence of the given secrets in a byte stream with '*' of the same length, so
 * Content-Length stays right. Matches split across chunks are caught: a chunk's tail is held back
 * only while it could still be the start of a secret, so streams (SSE) are not delayed otherwise.
 * A plain object rather than a Transform: the relay calls it inline, with no stream machinery.
 */
export class Redactor {
  readonly #needles: Buffer[]
  #carry: Buffer | undefined
  count = 0

  constructor(secrets: readonly string[]) {
    this.#needles = secrets.filter((s) => s.length > 0).map((s) => Buffer.from(s, 'utf8'))
  }

  /** The bytes of `chunk` (with any held-back tail before them) that can be sent now, masked. */
  push(chunk: Buffer): Buffer {
    let buf = this.#carry === undefined ? chunk : Buffer.concat([this.#carry, chunk])
    // Copy only when something must be masked: the chunk is borrowed from the upstream's stream.
    if (this.#needles.some((n) => buf.includes(n))) {
      if (buf === chunk) buf = Buffer.from(chunk)
      this.count += redactInPlace(buf, this.#needles)
    }
    const keep = pendingPrefixLength(buf, this.#needles)
    this.#carry = keep === 0 ? undefined : Buffer.from(buf.subarray(buf.length - keep))
    return keep === 0 ? buf : buf.subarray(0, buf.length - keep)
  }

  /** What was held back, at the end of the stream (it cannot be the start of a secret any more). */
  flush(): Buffer {
    const rest = this.#carry ?? Buffer.alloc(0)
    this.#carry = undefined
    return rest
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
