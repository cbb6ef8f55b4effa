import type { TLSSocket } from 'node:tls'
import { HpackDecoder } from '../../src/proxy/h2/hpack-decoder.ts'
import { openTunnel } from './raw-http.ts'

/**
 * HTTP/2 written frame by frame (RFC 9113 §4, §6), for what no client library will send: floods,
 * malformed header blocks, flow-control abuse. Header blocks are HPACK literals without indexing
 * and without Huffman coding (RFC 7541 §6.2.2), which every decoder must take. What comes back is
 * parsed into frames; keyvalet's header blocks are decoded on demand (`answer`). Every wait is bounded.
 */

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(streamId & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** An HPACK integer with an `prefix`-bit prefix, the first byte's high bits set to `high`. */
function hpackInt(value: number, prefix: number, high: number): Buffer {
  const max = (1 << prefix) - 1
  if (value < max) return Buffer.from([high | value])
  const out = [high | max]
  let rest = value - max
  while (rest >= 128) {
    out.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
  return Buffer.from(out)
}

/** A literal field that HPACK adds to the decoder's dynamic table (RFC 7541 §6.2.1), new name. */
export function indexedLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1')
  const v = Buffer.from(value, 'latin1')
  return Buffer.concat([Buffer.from([0x40]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v])
}

/** A field by its HPACK index (RFC 7541 §6.1): 62 is the newest dynamic table entry. */
export function indexed(index: number): Buffer {
  return hpackInt(index, 7, 0x80)
}

/** A header block of literal fields without indexing, names and values as given (bytes as latin1). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = []
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1')
    const v = Buffer.from(value, 'latin1')
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v)
  }
  return Buffer.concat(parts)
}

export function settings(entries: readonly (readonly [number, number])[] = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6)
    payload.writeUInt32BE(value, i * 6 + 2)
  })
  return frame(FRAME.SETTINGS, 0, 0, payload)
}

export function headers(streamId: number, block: Buffer, opts: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  return frame(FRAME.HEADERS, (opts.endStream === true ? FLAG.END_STREAM : 0) | (opts.endHeaders === false ? 0 : FLAG.END_HEADERS), streamId, block)
}

export function continuation(streamId: number, block: Buffer, endHeaders = false): Buffer {
  return frame(FRAME.CONTINUATION, endHeaders ? FLAG.END_HEADERS : 0, streamId, block)
}

export function data(streamId: number, payload: Buffer, endStream = false): Buffer {
  return frame(FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId, payload)
}

export function rstStream(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4)
  payload.writeUInt32BE(code)
  return frame(FRAME.RST_STREAM, 0, streamId, payload)
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4)
  payload.writeUInt32BE(increment & 0x7fffffff)
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload)
}

export interface Frame {
  readonly type: number
  readonly flags: number
  readonly streamId: number
  readonly payload: Buffer
}

/** A raw HTTP/2 connection inside an intercepted tunnel: the preface and SETTINGS are sent on open. */
export class RawH2 {
  readonly frames: Frame[] = []
  readonly socket: TLSSocket
  closed = false
  #buffered = Buffer.alloc(0)
  #waiters = new Set<() => void>()

  private constructor(socket: TLSSocket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
  }

  static async open(opts: { proxyPort: number; authority: string; proxyAuthorization: string; ca: string }, initial: readonly (readonly [number, number])[] = []): Promise<RawH2> {
    const socket = await openTunnel({ ...opts, alpn: ['h2'] })
    if (socket.alpnProtocol !== 'h2') throw new Error(`the tunnel chose ${String(socket.alpnProtocol)}, not h2`)
    const raw = new RawH2(socket)
    raw.write(Buffer.concat([PREFACE, settings(initial)]))
    return raw
  }

  /** Writes unless the connection is gone; whether it was written. */
  write(bytes: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false
    this.socket.write(bytes)
    return true
  }

  /** The GOAWAY keyvalet sent, if any: its error code. */
  get goaway(): number | undefined {
    const f = this.frames.find((x) => x.type === FRAME.GOAWAY)
    return f === undefined ? undefined : f.payload.readUInt32BE(4)
  }

  /** RST_STREAM codes keyvalet sent, by stream. */
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]))
  }

  /** Resolves once `done()` holds or the connection closes, rejecting after `timeoutMs`. */
  until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done() && !this.closed) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(new Error('the awaited frames did not come in time'))
      }, timeoutMs)
      this.#waiters.add(check)
      check()
    })
  }

  close(): void {
    this.socket.destroy()
  }

  /** What keyvalet answered on a stream: its head (the header blocks of the connection decoded in order, as HPACK requires) and its DATA. */
  answer(streamId: number): { headers: Record<string, string>; body: string; ended: boolean } {
    const decoder = new HpackDecoder()
    const headers: Record<string, string> = {}
    for (const f of this.frames) {
      if (f.type !== FRAME.HEADERS && f.type !== FRAME.CONTINUATION) continue
      decoder.write(f.payload, (name, value) => { if (f.streamId === streamId) headers[name] = value })
      if ((f.flags & FLAG.END_HEADERS) !== 0) decoder.end()
    }
    const own = this.frames.filter((f) => f.streamId === streamId)
    const body = Buffer.concat(own.filter((f) => f.type === FRAME.DATA).map((f) => f.payload)).toString()
    return { headers, body, ended: own.some((f) => (f.type === FRAME.DATA || f.type === FRAME.HEADERS) && (f.flags & FLAG.END_STREAM) !== 0) }
  }

  #read(chunk: Buffer): void {
    this.#buffered = Buffer.concat([this.#buffered, chunk])
    while (this.#buffered.length >= 9) {
      const length = this.#buffered.readUIntBE(0, 3)
      if (this.#buffered.length < 9 + length) break
      const f = { type: this.#buffered[3] ?? 0, flags: this.#buffered[4] ?? 0, streamId: this.#buffered.readUInt32BE(5) & 0x7fffffff, payload: this.#buffered.subarray(9, 9 + length) }
      this.#buffered = this.#buffered.subarray(9 + length)
      // Answer SETTINGS and PING as a peer must, so only the attack itself is judged.
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) this.write(frame(FRAME.SETTINGS, FLAG.ACK, 0))
      if (f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0) this.write(frame(FRAME.PING, FLAG.ACK, 0, f.payload))
      if (this.frames.length < 10_000) this.frames.push(f)
    }
    this.#wake()
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter()
  }
}

/** The request header block of a GET (`extra` fields after the pseudo-headers). */
export function request(authority: string, path: string, extra: readonly (readonly [string, string])[] = [], method = 'GET'): Buffer {
  return headerBlock([[':method', method], [':scheme', 'https'], [':authority', authority], [':path', path], ...extra])
}
