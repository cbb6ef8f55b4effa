/**
 * An event stream (text/event-stream) relayed one event at a time, each passed through
 * `rewrite`: an event is handed on as soon as the blank line that ends it arrives, never held for
 * the next. Lines end in LF, CRLF or CR (the WHATWG event-stream format). An event longer than
 * `maxEventBytes` fails the stream: it would otherwise have to be held whole.
 */

import { Transform, type TransformCallback } from 'node:stream'
import { KeyvaletError } from '../errors.ts'

const LF = 0x0a
const CR = 0x0d

/** The event's data (its `data:` lines joined by LF, as a client reads them), or undefined when it has none. */
export function eventData(event: string): string | undefined {
  let data: string[] | undefined
  for (const line of event.split(/\r\n|\r|\n/)) {
    if (line !== 'data' && !line.startsWith('data:')) continue
    const value = line.slice(5)
    ;(data ??= []).push(value.startsWith(' ') ? value.slice(1) : value)
  }
  return data?.join('\n')
}

/** The event with its data replaced by `data` (one line: JSON without raw newlines), its other fields kept in order. */
export function withData(event: string, data: string): string {
  const lines = event.split(/\r\n|\r|\n/).filter((l) => l !== '')
  const out: string[] = []
  let placed = false
  for (const line of lines) {
    if (line === 'data' || line.startsWith('data:')) {
      if (!placed) out.push(`data: ${data}`)
      placed = true
    } else {
      out.push(line)
    }
  }
  return `${out.join('\n')}\n\n`
}

export class EventStream extends Transform {
  readonly #rewrite: (event: Buffer) => Buffer
  readonly #max: number
  /** The bytes of the event being read, from earlier chunks (each chunk is scanned once). */
  #parts: Buffer[] = []
  #size = 0
  /** Whether the line being read has no byte yet: a line end then ends the event. */
  #lineEmpty = true
  /** The last byte was a CR ending a line: an LF now belongs to the same line end. */
  #cr = false
  /** That CR ended the event: it is handed on with the LF, if one follows, or before the next byte. */
  #endAfterCr = false

  constructor(rewrite: (event: Buffer) => Buffer, maxEventBytes: number) {
    super()
    this.#rewrite = rewrite
    this.#max = maxEventBytes
  }

  /** An upstream body has dump() (upstream-exchange.ts); the relay calls it for a body it does not read. */
  async dump(): Promise<void> {
    this.resume()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let start = 0
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number
      if (this.#cr) {
        this.#cr = false
        if (byte === LF) {
          if (this.#endAfterCr) start = this.#event(chunk, start, i + 1)
          continue
        }
      }
      if (this.#endAfterCr) start = this.#event(chunk, start, i)
      if (byte === LF || byte === CR) {
        this.#cr = byte === CR
        if (this.#lineEmpty) {
          // A blank line: the event ends here (after the LF a CR may still bring).
          if (byte === LF) start = this.#event(chunk, start, i + 1)
          else this.#endAfterCr = true
        }
        this.#lineEmpty = true
      } else {
        this.#lineEmpty = false
      }
    }
    if (start < chunk.length) {
      this.#parts.push(chunk.subarray(start))
      this.#size += chunk.length - start
    }
    if (this.#size > this.#max) return done(new KeyvaletError('upstream_response_invalid', { detail: { why: 'mcp_event_too_large', limit: this.#max } }))
    done()
  }

  override _flush(done: TransformCallback): void {
    // An event the stream ended inside is never dispatched by a client; it is narrowed all the same.
    if (this.#size > 0) this.push(this.#rewrite(Buffer.concat(this.#parts, this.#size)))
    done()
  }

  /** Hands on the event that ends at `end` of `chunk`; returns where the next one begins. */
  #event(chunk: Buffer, start: number, end: number): number {
    this.#endAfterCr = false
    const tail = chunk.subarray(start, end)
    const event = this.#parts.length === 0 ? tail : Buffer.concat([...this.#parts, tail], this.#size + tail.length)
    this.#parts = []
    this.#size = 0
    if (event.length > 0) this.push(this.#rewrite(event))
    return end
  }
}
