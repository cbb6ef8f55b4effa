import { ESCAPE_START, EscapeReader, MAX_ESCAPE_BYTES } from './escapes.ts'
import { ALWAYS, NEVER, type MaskPatterns } from './patterns.ts'

/** Slots of the calendar of partial occurrences: more than the longest escape, a power of two. */
const RING = 16
const EMPTY = Buffer.alloc(0)
const STAR = 0x2a

/** Receives the masked bytes, in order. */
export type Emit = (bytes: Buffer) => void

/**
 * Replaces every occurrence of the forms in `patterns` (patterns.ts) in a byte stream with '*' of
 * the same length, so Content-Length stays right; occurrences split across chunks are found.
 *
 * Algorithm: one pass over the bytes. At each offset the text holds a literal byte and, when an
 * escape starts there, the byte(s) it stands for (escapes.ts). A partial occurrence is a form
 * position and the offset where it began, filed under the offset where it continues (after a
 * 1-byte literal or an escape of up to 12 bytes, so a calendar of 16 slots). At each offset the
 * partial occurrences filed there advance by the literal and by the escape, and new ones begin
 * where a form's first position accepts either (a table per byte); one reaching the end of its
 * form masks the bytes from its beginning to there. An offset where nothing is pending and no
 * form can begin is passed over with one table look-up.
 *
 * Bytes are handed on as soon as no partial occurrence can still cover them. A chunk with nothing
 * to mask is handed on as it is (not copied), or as its head when its tail may begin an
 * occurrence: that tail is held back (a small copy) and handed on by itself before the next
 * chunk. Only masking copies a chunk. A plain object rather than a Transform: the relay calls it
 * inline.
 */
export class Redactor {
  readonly #patterns: MaskPatterns
  readonly #reader = new EscapeReader()
  /**
   * The calendar: slot o & (RING - 1) holds the partial occurrences that continue at offset o,
   * each its next form position and the offset where it began; #room entries per slot.
   */
  #room = 4
  #positions = new Int32Array(RING * 4)
  #starts = new Float64Array(RING * 4)
  readonly #counts = new Int32Array(RING)
  /** Partial occurrences filed in the calendar. */
  #pending = 0
  /** Our copy of the bytes held back, stream offsets [#base, #seen); #next is the first offset not yet examined. */
  #held: Buffer | undefined
  #base = 0
  #next = 0
  #seen = 0
  /** Ranges [start, end) of stream offsets to mask, not yet handed on. */
  #masks: number[] = []
  #maskedTo = 0
  /** Occurrences masked (overlapping ones count once). */
  count = 0

  constructor(patterns: MaskPatterns) {
    this.#patterns = patterns
  }

  /** Back to the state of a new Redactor over the same patterns, keeping the calendar's room (see maskText). */
  reset(): void {
    this.#reader.count = 0
    this.#reader.length = 0
    this.#counts.fill(0)
    this.#pending = 0
    this.#held = undefined
    this.#base = 0
    this.#next = 0
    this.#seen = 0
    this.#masks = []
    this.#maskedTo = 0
    this.count = 0
  }

  /** Passes to `emit` the bytes that can be sent now, masked. Never modifies `chunk`. */
  push(chunk: Buffer, emit: Emit): void {
    const chunkBase = this.#seen
    this.#seen += chunk.length
    const held = this.#held
    if (this.#next < chunkBase && held !== undefined) {
      // An escape began in the held bytes: read it on into this chunk.
      const from = this.#next
      const bridge = Buffer.concat([held.subarray(from - this.#base), chunk.subarray(0, MAX_ESCAPE_BYTES)])
      if (this.#scan(bridge, from, 0, chunkBase - from, false) < chunkBase - from) {
        // The chunk is shorter than the escape: it joins the held bytes.
        this.#held = Buffer.concat([held, chunk])
        return this.#handOn(EMPTY, this.#seen, emit, false)
      }
    }
    this.#scan(chunk, chunkBase, Math.max(this.#next - chunkBase, 0), chunk.length, false)
    this.#handOn(chunk, chunkBase, emit, false)
  }

  /**
   * Passes on what was held back, at the end of the stream. `cutAt` > 0 also masks an occurrence
   * the end cut short once it spans that many bytes (a value truncated by whoever wrote it).
   */
  flush(emit: Emit, cutAt = 0): void {
    const held = this.#held
    if (held !== undefined) this.#scan(held, this.#base, this.#next - this.#base, held.length, true)
    if (cutAt > 0) this.#maskCut(this.#seen, cutAt)
    this.#counts.fill(0)
    this.#pending = 0
    this.#handOn(EMPTY, this.#seen, emit, true)
  }

  /** Examines offsets buf[from .. to) (buf[0] is stream offset `at0`); returns where it stopped for want of bytes. */
  #scan(buf: Buffer, at0: number, from: number, to: number, ended: boolean): number {
    const p = this.#patterns
    const { startRow, follows, firstFrom, firstList, last } = p
    const reader = this.#reader
    const counts = this.#counts
    let i = from
    for (; i < to; i++) {
      if (this.#pending === 0) {
        // Nothing pending: pass over bytes that begin no form, or whose next byte cannot carry one on.
        for (; i < to; i++) {
          const row = startRow[buf[i] as number] as number
          if (row === ALWAYS || (row !== NEVER && (i + 1 === buf.length || follows[row * 256 + (buf[i + 1] as number)] === 1))) break
        }
        if (i === to) break
      }
      const b = buf[i] as number
      let escaped = 0
      if (ESCAPE_START[b] === 1) {
        const found = reader.read(buf, i, buf.length, ended)
        if (found < 0) break
        escaped = found
      }
      const at = at0 + i
      const slot = at & (RING - 1)
      const n = counts[slot] as number
      if (n > 0) {
        counts[slot] = 0
        this.#pending -= n
        const from = slot * this.#room
        for (let k = from; k < from + n; k++) {
          const position = this.#positions[k] as number
          const start = this.#starts[k] as number
          if (p.accepts(position, b)) this.#advance(position, start, at + 1)
          if (escaped === 1) this.#escape(position, start, at)
        }
      }
      // A form begins here when its first position accepts the byte (and, when the next byte is
      // at hand and is no escape, its second position accepts that: most beginnings end there).
      const next = i + 1 < buf.length ? (buf[i + 1] as number) : -1
      for (let k = firstFrom[b] as number, end = firstFrom[b + 1] as number; k < end; k++) {
        const position = firstList[k] as number
        if (next >= 0 && last[position] === 0 && ESCAPE_START[next] === 0 && !p.accepts(position + 1, next)) continue
        this.#advance(position, at, at + 1)
      }
      if (escaped === 1) {
        const first = reader.bytes[0] as number
        for (let k = firstFrom[first] as number, end = firstFrom[first + 1] as number; k < end; k++) this.#escape(firstList[k] as number, at, at)
      }
    }
    this.#next = Math.max(this.#next, at0 + i)
    return i
  }

  /** The partial occurrence at `position` took the escape read at `at`: every byte it stands for must fit. */
  #escape(position: number, start: number, at: number): void {
    const p = this.#patterns
    const reader = this.#reader
    let q = position
    for (let k = 0; k < reader.count; k++, q++) {
      if (!p.accepts(q, reader.bytes[k] ?? 0)) return
      if (p.last[q] === 1 && k < reader.count - 1) return
    }
    this.#advance(q - 1, start, at + reader.length)
  }

  /** Position `position` was matched, ending at offset `end`: the form is complete, or continues there. */
  #advance(position: number, start: number, end: number): void {
    if (this.#patterns.last[position] === 1) return this.#mask(start, end)
    this.#file(position + 1, start, end & (RING - 1))
  }

  /** Files a partial occurrence in a slot; the same position at the same offset has the same future, so only the earlier start is kept. */
  #file(position: number, start: number, slot: number): void {
    const from = slot * this.#room
    const n = this.#counts[slot] as number
    for (let k = from; k < from + n; k++) {
      if (this.#positions[k] === position) {
        if (start < (this.#starts[k] as number)) this.#starts[k] = start
        return
      }
    }
    if (n === this.#room) return this.#grow(position, start, slot)
    this.#positions[from + n] = position
    this.#starts[from + n] = start
    this.#counts[slot] = n + 1
    this.#pending++
  }

  #grow(position: number, start: number, slot: number): void {
    const room = this.#room * 2
    const positions = new Int32Array(RING * room)
    const starts = new Float64Array(RING * room)
    for (let s = 0; s < RING; s++) {
      positions.set(this.#positions.subarray(s * this.#room, s * this.#room + (this.#counts[s] as number)), s * room)
      starts.set(this.#starts.subarray(s * this.#room, s * this.#room + (this.#counts[s] as number)), s * room)
    }
    this.#room = room
    this.#positions = positions
    this.#starts = starts
    this.#file(position, start, slot)
  }

  #mask(start: number, end: number): void {
    if (start >= this.#maskedTo) this.count++
    this.#maskedTo = Math.max(this.#maskedTo, end)
    this.#masks.push(start, end)
  }

  /** At the end of the stream: partial occurrences still open (all end at `end`) are masked when they span `cutAt` bytes. */
  #maskCut(end: number, cutAt: number): void {
    this.#eachStart((start) => {
      if (end - start >= cutAt) this.#mask(start, end)
    })
  }

  /**
   * Hands on, masked, the held bytes and those of `chunk` (at stream offset `chunkBase`) that come
   * before the earliest offset a partial occurrence may still cover or that is not yet examined;
   * holds back the rest.
   */
  #handOn(chunk: Buffer, chunkBase: number, emit: Emit, ended: boolean): void {
    const base = this.#base
    const end = chunkBase + chunk.length
    let keep = ended ? end : this.#next
    if (this.#pending > 0) this.#eachStart((start) => void (keep = Math.min(keep, start)))
    const held = this.#held
    if (held !== undefined && keep > base) {
      const out = held.subarray(0, Math.min(keep, chunkBase) - base)
      if (out.length > 0) emit(this.#fill(out, base, false))
    }
    if (keep > chunkBase) emit(this.#fill(keep === end ? chunk : chunk.subarray(0, keep - chunkBase), chunkBase, true))
    if (keep < end) {
      const fromHeld = held !== undefined && keep < chunkBase ? held.subarray(keep - base) : EMPTY
      this.#held = Buffer.concat([fromHeld, chunk.subarray(Math.max(keep - chunkBase, 0))])
    } else {
      this.#held = undefined
    }
    this.#base = keep
    if (this.#masks.length > 0) {
      const later: number[] = []
      for (let k = 0; k < this.#masks.length; k += 2) {
        const stop = this.#masks[k + 1] ?? 0
        if (stop > keep) later.push(Math.max(this.#masks[k] ?? 0, keep), stop)
      }
      this.#masks = later
    }
  }

  #eachStart(visit: (start: number) => void): void {
    for (let slot = 0; slot < RING; slot++) {
      const from = slot * this.#room
      for (let k = from; k < from + (this.#counts[slot] as number); k++) visit(this.#starts[k] as number)
    }
  }

  /** `out` (stream offset `at`) with the masks that fall on it applied; a borrowed buffer is copied first. */
  #fill(out: Buffer, at: number, borrowed: boolean): Buffer {
    let result = out
    for (let k = 0; k < this.#masks.length; k += 2) {
      const from = Math.max(this.#masks[k] ?? 0, at)
      const to = Math.min(this.#masks[k + 1] ?? 0, at + out.length)
      if (from >= to) continue
      if (borrowed && result === out) result = Buffer.from(out)
      result.fill(STAR, from - at, to - at)
    }
    return result
  }
}

const textRedactors = new WeakMap<MaskPatterns, Redactor>()

/** `text` with every form masked, and how many occurrences; `cutAt` as in Redactor.flush. */
export function maskText(patterns: MaskPatterns, text: string, encoding: 'utf8' | 'latin1', cutAt = 0): { text: string; count: number } {
  if (patterns.empty || text === '' || !patterns.mayOccurInText(text)) return { text, count: 0 }
  const bytes = Buffer.from(text, encoding)
  if (!patterns.mayOccurIn(bytes)) return { text, count: 0 }
  // One Redactor per patterns, reset for each text: a new one per string was the largest cost of
  // masking an audit record (its typed arrays), and maskText runs to completion synchronously.
  let redactor = textRedactors.get(patterns)
  if (redactor === undefined) textRedactors.set(patterns, (redactor = new Redactor(patterns)))
  redactor.reset()
  const parts: Buffer[] = []
  const keep = (b: Buffer): void => void parts.push(b)
  redactor.push(bytes, keep)
  redactor.flush(keep, cutAt)
  if (redactor.count === 0) return { text, count: 0 }
  return { text: Buffer.concat(parts).toString(encoding), count: redactor.count }
}
