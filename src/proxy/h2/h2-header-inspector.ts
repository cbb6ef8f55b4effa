import { HpackDecoder, HpackError } from './hpack-decoder.ts'

/**
 * Why a stream's header block is refused: a regular field nghttp2 would drop without a word.
 * nghttp2 (RFC 9113 §8.2.1, leading and trailing whitespace checked, Node's default) resets a
 * stream for an upper-case name, a bad pseudo-header or a connection-specific field, but a
 * regular field whose name is not all lower-case token characters (RFC 9110 §5.6.2), or whose
 * value has a control character other than HTAB (CR, LF, NUL among them) or DEL, or begins or
 * ends with SP or HTAB, it ignores: the request would go on without it, keyvalet never told.
 * `undecodable`: this inspector could not follow the connection's header blocks (a compression
 * or framing error, which nghttp2 fails the connection for too); no later stream is vouched for.
 */
export interface HeaderRefusal {
  readonly why: 'name_invalid' | 'value_control_character' | 'value_whitespace' | 'undecodable'
  /** The field's name, only when the name itself is valid. */
  readonly field?: string
}

export interface InspectorBounds {
  /** The SETTINGS_HEADER_TABLE_SIZE the listener advertised (nghttp2's default 4096 when not set). */
  readonly headerTableSize: number
  /** The SETTINGS_MAX_FRAME_SIZE the listener advertised (16384 when not set). */
  readonly maxFrameSize: number
  /** Past these a stream is reset by Node (ENHANCE_YOUR_CALM) and never begins; its fields are not checked further. */
  readonly maxHeaderListBytes: number
  readonly maxHeaderListPairs: number
}

const PREFACE_BYTES = 24
const HEADERS = 0x1
const RST_STREAM = 0x3
const CONTINUATION = 0x9
const END_HEADERS = 0x4
const PADDED = 0x8
const PRIORITY = 0x20

const TOKEN_LOWER = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/
const EDGE_WHITESPACE = /^[ \t]|[ \t]$/

/** The refusal a field earns, if any (pseudo-header names are nghttp2's to judge: it resets for those). */
export function fieldRefusal(name: string, value: string): HeaderRefusal | undefined {
  const pseudo = name.startsWith(':')
  if (!pseudo && !TOKEN_LOWER.test(name)) return { why: 'name_invalid' }
  if (CONTROL.test(value)) return { why: 'value_control_character', field: name }
  if (EDGE_WHITESPACE.test(value)) return { why: 'value_whitespace', field: name }
  return undefined
}

/**
 * Reads what a client sends on one HTTP/2 connection, alongside nghttp2 and before it: the
 * preface, then frame by frame (RFC 9113 §4.1); the payloads of HEADERS and CONTINUATION frames
 * are decoded with an HPACK decoder of its own, which stays in step with nghttp2's since both
 * take the same blocks in the same order, and every other payload is skipped unread. A new
 * stream whose header block has a field nghttp2 would drop is remembered with the reason, for
 * the listener to refuse when the stream begins (`take`). Nothing is changed or held back: the
 * caller passes every chunk on as it was. What it keeps is bounded: one frame's payload when a
 * chunk ends inside it (the advertised frame size; larger HEADERS or CONTINUATION frames, a
 * FRAME_SIZE_ERROR for nghttp2, stop the inspection), the decoder's table and one incomplete
 * field representation (hpack-decoder.ts), and a refusal per stream not yet begun.
 */
export class H2HeaderInspector {
  readonly #bounds: InspectorBounds
  readonly #decoder: HpackDecoder
  #prefaceLeft = PREFACE_BYTES
  readonly #head = Buffer.alloc(9)
  #headFill = 0
  #payloadLeft = 0
  /** The frame whose payload is being read (of HEADERS and CONTINUATION only, collected in #collected). */
  #frame = { type: 0, flags: 0, streamId: 0 }
  #collected: Buffer | undefined
  #collectedFill = 0
  /** The header block being decoded: its stream (0: none), whether it opens the stream, what it has cost, the first refusal. */
  #block = { streamId: 0, opens: false, bytes: 0, pairs: 0, refusal: undefined as HeaderRefusal | undefined }
  #highestStream = 0
  readonly #refused = new Map<number, HeaderRefusal>()
  /** Set once the inspector cannot follow: the last stream whose header block it read whole. */
  #lostAfter: number | undefined
  #lastWholeStream = 0

  readonly #onStreamReset: () => void

  /** `onStreamReset` is called for each RST_STREAM the client sends, as its frame header is read. */
  constructor(bounds: InspectorBounds, onStreamReset: () => void = () => {}) {
    this.#bounds = bounds
    this.#onStreamReset = onStreamReset
    this.#decoder = new HpackDecoder(bounds.headerTableSize)
  }

  /** Whether the inspector stopped following the connection (a framing or compression error). */
  get lost(): boolean {
    return this.#lostAfter !== undefined
  }

  /**
   * The refusal for a stream that begins now (called as nghttp2 begins it), if its header block
   * earned one. Refusals of lower streams are forgotten: not begun by now, they were reset by
   * nghttp2 (clients open streams in order) and never will be.
   */
  begin(streamId: number): HeaderRefusal | undefined {
    if (this.#lostAfter !== undefined && streamId > this.#lostAfter) return { why: 'undecodable' }
    const refusal = this.#refused.get(streamId)
    if (this.#refused.size > 0) for (const id of this.#refused.keys()) if (id <= streamId) this.#refused.delete(id)
    return refusal
  }

  /** Reads a chunk of what the client sent, in order. Never throws for what the client sent. */
  inspect(chunk: Buffer): void {
    if (this.#lostAfter !== undefined) return
    try {
      this.#read(chunk)
    } catch (err) {
      if (!(err instanceof HpackError) && !(err instanceof FramingError)) throw err
      this.#lostAfter = this.#lastWholeStream
      this.#collected = undefined
    }
  }

  #read(chunk: Buffer): void {
    let pos = 0
    while (pos < chunk.length) {
      if (this.#prefaceLeft > 0) {
        const n = Math.min(this.#prefaceLeft, chunk.length - pos)
        this.#prefaceLeft -= n
        pos += n
      } else if (this.#headFill < 9) {
        const n = Math.min(9 - this.#headFill, chunk.length - pos)
        chunk.copy(this.#head, this.#headFill, pos, pos + n)
        this.#headFill += n
        pos += n
        if (this.#headFill === 9) pos += this.#beginFrame(chunk, pos)
      } else {
        const n = Math.min(this.#payloadLeft, chunk.length - pos)
        if (this.#collected !== undefined) chunk.copy(this.#collected, this.#collectedFill, pos, pos + n)
        this.#collectedFill += n
        this.#payloadLeft -= n
        pos += n
        if (this.#payloadLeft === 0) this.#endFrame()
      }
    }
  }

  /**
   * A frame header was read; its payload begins at `chunk[pos]`. A header frame's payload all in
   * the chunk is taken from it without a copy, and the frame ended: how many bytes were taken.
   */
  #beginFrame(chunk: Buffer, pos: number): number {
    const length = this.#head.readUIntBE(0, 3)
    const type = this.#head[3] as number
    this.#frame = { type, flags: this.#head[4] as number, streamId: this.#head.readUInt32BE(5) & 0x7fffffff }
    if (type === RST_STREAM) this.#onStreamReset()
    this.#payloadLeft = length
    this.#collectedFill = 0
    this.#collected = undefined
    const inBlock = this.#block.streamId !== 0
    if (inBlock !== (type === CONTINUATION) || (inBlock && this.#frame.streamId !== this.#block.streamId)) throw new FramingError('a header block interrupted, or a CONTINUATION outside one')
    const headerFrame = type === HEADERS || type === CONTINUATION
    if (headerFrame && length > this.#bounds.maxFrameSize) throw new FramingError('a header frame over SETTINGS_MAX_FRAME_SIZE')
    if (headerFrame && chunk.length - pos < length) {
      this.#collected = Buffer.allocUnsafe(length)
      return 0
    }
    if (headerFrame) this.#collected = chunk.subarray(pos, pos + length)
    else if (length > 0) return 0
    this.#payloadLeft = 0
    this.#endFrame()
    return headerFrame ? length : 0
  }

  #endFrame(): void {
    this.#headFill = 0
    const payload = this.#collected
    this.#collected = undefined
    if (payload === undefined) return
    const { type, flags, streamId } = this.#frame
    let fragment = payload
    if (type === HEADERS) {
      const padding = (flags & PADDED) !== 0 ? (payload[0] ?? 0) : 0
      const start = ((flags & PADDED) !== 0 ? 1 : 0) + ((flags & PRIORITY) !== 0 ? 5 : 0)
      if (start + padding > payload.length) throw new FramingError('HEADERS padding longer than its payload')
      fragment = payload.subarray(start, payload.length - padding)
      const opens = streamId > this.#highestStream
      if (opens) this.#highestStream = streamId
      this.#block = { streamId, opens, bytes: 0, pairs: 0, refusal: undefined }
    }
    this.#decoder.write(fragment, this.#onField)
    if ((flags & END_HEADERS) === 0) return
    this.#decoder.end()
    const block = this.#block
    this.#block = { streamId: 0, opens: false, bytes: 0, pairs: 0, refusal: undefined }
    if (!block.opens) return
    this.#lastWholeStream = block.streamId
    if (block.refusal !== undefined) this.#refused.set(block.streamId, block.refusal)
  }

  readonly #onField = (name: string, value: string): void => {
    const block = this.#block
    if (block.refusal !== undefined) return
    block.bytes += name.length + value.length + 32
    if (++block.pairs > this.#bounds.maxHeaderListPairs || block.bytes > this.#bounds.maxHeaderListBytes) return
    block.refusal = fieldRefusal(name, value)
  }
}

class FramingError extends Error {}
