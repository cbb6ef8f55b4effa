import { KeyvaletError } from '../errors.ts'
import { chunkSignature, type ChunkSigningContext } from './sigv4.ts'

/** A chunk larger than this is refused rather than held (SDKs send 8 KiB to 1 MiB). */
const MAX_CHUNK = 16 * 1024 * 1024
const HEADER = /^([0-9a-fA-F]{1,8});chunk-signature=[0-9a-f]{64}$/
const MAX_HEADER = 8 + 17 + 64

/**
 * Re-signs an aws-chunked body (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD) as it
 * streams: every chunk is `hex-size;chunk-signature=SIG CRLF data CRLF`, and its signature chains
 * from the previous one, the first from the request's. The sandbox's signatures (made with dummy
 * keys) are replaced by ones made with the real keys, chained from keyvalet's request signature.
 * A signature is always 64 hex characters, so the body keeps its length byte for byte.
 *
 * Each chunk is held until it is complete (its signature covers its data and comes first), which
 * bounds memory by the chunk size. Anything but well-formed framing is an error: the upstream
 * request is aborted, nothing half-signed goes out.
 */
export class ChunkResigner {
  readonly #ctx: ChunkSigningContext
  #previous: string
  #pending: Buffer = Buffer.alloc(0)
  #done = false

  constructor(ctx: ChunkSigningContext) {
    this.#ctx = ctx
    this.#previous = ctx.seed
  }

  /** The re-signed bytes that are complete so far. */
  push(input: Buffer): Buffer[] {
    if (this.#done && input.length > 0) throw invalid('data after the final chunk')
    this.#pending = this.#pending.length === 0 ? input : Buffer.concat([this.#pending, input])
    const out: Buffer[] = []
    for (let guard = 0; guard < 100_000 && !this.#done; guard++) {
      const eol = this.#pending.indexOf('\r\n')
      if (eol === -1) {
        if (this.#pending.length > MAX_HEADER) throw invalid('a chunk header is malformed')
        break
      }
      const match = HEADER.exec(this.#pending.subarray(0, eol).toString('latin1'))
      if (match === null) throw invalid('a chunk header is malformed')
      const size = Number.parseInt(match[1] ?? '', 16)
      if (size > MAX_CHUNK) throw invalid(`a chunk is larger than ${MAX_CHUNK} bytes`)
      const end = eol + 2 + size + 2
      if (size === 0) {
        // The final chunk: its header and an empty line (no trailers in this mode).
        if (this.#pending.length < end) break
        if (this.#pending.subarray(eol + 2, end).toString('latin1') !== '\r\n') throw invalid('the final chunk is malformed')
      } else if (this.#pending.length < end) {
        break
      }
      const data = this.#pending.subarray(eol + 2, eol + 2 + size)
      if (size > 0 && this.#pending.subarray(end - 2, end).toString('latin1') !== '\r\n') throw invalid('a chunk does not end with CRLF')
      const signature = chunkSignature(this.#ctx, this.#previous, data)
      this.#previous = signature
      out.push(Buffer.from(`${match[1]};chunk-signature=${signature}\r\n`, 'latin1'), this.#pending.subarray(eol + 2, end))
      this.#pending = this.#pending.subarray(end)
      if (size === 0) this.#done = true
    }
    if (this.#done && this.#pending.length > 0) throw invalid('data after the final chunk')
    return out
  }

  /** Throws unless the body ended right after its final chunk. */
  end(): void {
    if (!this.#done || this.#pending.length > 0) throw invalid('the body ended before its final chunk')
  }
}

function invalid(why: string): KeyvaletError {
  return new KeyvaletError('request_malformed', { message: `The aws-chunked request body is malformed (${why}); the request was not completed.`, detail: { why: 'aws_chunked_malformed', problem: why } })
}
