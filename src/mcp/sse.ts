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
  #held: Buffer = Buffer.alloc(0)
  /** Where in #held the line being read begins. */
  #line = 0

  constructor(rewrite: (event: Buffer) => Buffer, maxEventBytes: number) {
    super()
    this.#rewrite = rewrite
    this.#max = maxEventBytes
  }

  /** undici's body has dump(); the relay calls it for a body it does not read. */
  async dump(): Promise<void> {
    this.resume()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const held = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk])
    let start = 0
    let line = this.#line
    let i = line
    while (i < held.length) {
      const byte = held[i] as number
      if (byte !== LF && byte !== CR) {
        i++
        continue
      }
      // A CR as the last byte may be the first half of a CRLF: wait for the next chunk.
      if (byte === CR && i + 1 === held.length) break
      const next = byte === CR && held[i + 1] === LF ? i + 2 : i + 1
      if (i === line) {
        // A blank line: the event ends here.
        if (next - start > 0) this.push(this.#rewrite(held.subarray(start, next)))
        start = next
      }
      line = next
      i = next
    }
    this.#held = held.subarray(start)
    this.#line = line - start
    if (this.#held.length > this.#max) return done(new KeyvaletError('upstream_response_invalid', { detail: { why: 'mcp_event_too_large', limit: this.#max } }))
    done()
  }

  override _flush(done: TransformCallback): void {
    // An event the stream ended inside is never dispatched by a client; it is narrowed all the same.
    if (this.#held.length > 0) this.push(this.#rewrite(this.#held))
    done()
  }
}
