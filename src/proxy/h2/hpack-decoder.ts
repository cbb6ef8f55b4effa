import { HuffmanError, huffmanDecode } from './hpack-huffman.ts'

/** A decoding error (RFC 7541 §2.3.3, §4.2, §5, §6): nghttp2 fails the connection with COMPRESSION_ERROR for the same bytes. */
export class HpackError extends Error {}

/** RFC 7541 Appendix A: index 1-61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ...[
    'accept-language', 'accept-ranges', 'accept', 'access-control-allow-origin', 'age', 'allow', 'authorization',
    'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'content-length',
    'content-location', 'content-range', 'content-type', 'cookie', 'date', 'etag', 'expect', 'expires', 'from',
    'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified',
    'link', 'location', 'max-forwards', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'refresh',
    'retry-after', 'server', 'set-cookie', 'strict-transport-security', 'transfer-encoding', 'user-agent', 'vary',
    'via', 'www-authenticate',
  ].map((name) => [name, ''] as const),
]

/** nghttp2's bound on one name or value (NGHTTP2_HD_MAX_NV): a longer string is a compression error there too. */
export const MAX_STRING_BYTES = 65_536

/** A representation not all in the bytes yet. */
const INCOMPLETE = -1

/**
 * An HPACK decoder (RFC 7541) for the header blocks one client sends on one connection. Its
 * state (the dynamic table) depends only on those bytes, so a decoder fed the same blocks as
 * nghttp2 stays in step with it. A block may come in fragments (HEADERS, then CONTINUATION): what
 * of it is complete is decoded at once, the rest of a field's representation kept for the next
 * fragment. What it holds is bounded: the table by `maxTableSize` (the SETTINGS_HEADER_TABLE_SIZE
 * the decoding side advertised), a kept remainder by one representation (strings over
 * MAX_STRING_BYTES are an error, as in nghttp2). Fields from the table are emitted without copying.
 */
export class HpackDecoder {
  readonly #maxTableSize: number
  #tableLimit: number
  /** Newest last: index 62 is the last entry. */
  readonly #table: [string, string][] = []
  #tableSize = 0
  #pending: Buffer | undefined
  /** No field yet in the current block: only here may the table size be updated (RFC 7541 §4.2). */
  #atBlockStart = true

  constructor(maxTableSize = 4096) {
    this.#maxTableSize = maxTableSize
    this.#tableLimit = maxTableSize
  }

  /** The current dynamic table's size in RFC 7541 §4.1's measure (for tests and bounds). */
  get tableSize(): number {
    return this.#tableSize
  }

  /** Decodes the fragment's complete representations, in order, calling `onField` for each field. */
  write(fragment: Buffer, onField: (name: string, value: string) => void): void {
    const input = this.#pending === undefined ? fragment : Buffer.concat([this.#pending, fragment])
    this.#pending = undefined
    let pos = 0
    while (pos < input.length) {
      const next = this.#decodeOne(input, pos, onField)
      if (next === INCOMPLETE) {
        this.#pending = input.subarray(pos)
        return
      }
      pos = next
    }
  }

  /** The block ended (END_HEADERS): a representation left incomplete is an error. */
  end(): void {
    const incomplete = this.#pending !== undefined
    this.#pending = undefined
    this.#atBlockStart = true
    if (incomplete) throw new HpackError('the header block ends inside a field representation')
  }

  /** One representation at `pos` (RFC 7541 §6): the position after it, or INCOMPLETE. Nothing changes unless it is complete. */
  #decodeOne(input: Buffer, pos: number, onField: (name: string, value: string) => void): number {
    const first = input[pos] as number
    if ((first & 0x80) !== 0) {
      const index = readInteger(input, pos, 7)
      if (index === undefined) return INCOMPLETE
      const [name, value] = this.#entry(index.value)
      this.#atBlockStart = false
      onField(name, value)
      return index.next
    }
    if ((first & 0xe0) === 0x20) {
      const size = readInteger(input, pos, 5)
      if (size === undefined) return INCOMPLETE
      if (!this.#atBlockStart) throw new HpackError('a dynamic table size update after a field')
      if (size.value > this.#maxTableSize) throw new HpackError('a dynamic table size update over the advertised SETTINGS_HEADER_TABLE_SIZE')
      this.#tableLimit = size.value
      this.#evict(0)
      return size.next
    }
    // Literals: with incremental indexing (01, 6-bit index), without (0000) or never indexed (0001), 4-bit index.
    const indexing = (first & 0xc0) === 0x40
    const nameIndex = readInteger(input, pos, indexing ? 6 : 4)
    if (nameIndex === undefined) return INCOMPLETE
    let next = nameIndex.next
    let name: string
    if (nameIndex.value === 0) {
      const literal = readString(input, next)
      if (literal === undefined) return INCOMPLETE
      name = literal.value
      next = literal.next
    } else {
      name = this.#entry(nameIndex.value)[0]
    }
    const value = readString(input, next)
    if (value === undefined) return INCOMPLETE
    if (indexing) this.#add(name, value.value)
    this.#atBlockStart = false
    onField(name, value.value)
    return value.next
  }

  #entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0')
    const fromStatic = STATIC_TABLE[index - 1]
    if (fromStatic !== undefined) return fromStatic
    const fromDynamic = this.#table[this.#table.length - (index - STATIC_TABLE.length)]
    if (fromDynamic === undefined) throw new HpackError('an index past the dynamic table')
    return fromDynamic
  }

  /** RFC 7541 §4.4: an entry larger than the table empties it and is not added. */
  #add(name: string, value: string): void {
    const size = name.length + value.length + 32
    this.#evict(size)
    if (size > this.#tableLimit) return
    this.#table.push([name, value])
    this.#tableSize += size
  }

  /** Evicts the oldest entries until `room` more fits within the table's limit. */
  #evict(room: number): void {
    while (this.#tableSize + room > this.#tableLimit && this.#table.length > 0) {
      const [name, value] = this.#table.shift() as [string, string]
      this.#tableSize -= name.length + value.length + 32
    }
  }
}

/** RFC 7541 §5.1, bounded to 2^32 - 1 as nghttp2 bounds it. */
function readInteger(input: Buffer, pos: number, prefixBits: number): { value: number; next: number } | undefined {
  const max = (1 << prefixBits) - 1
  let value = (input[pos] as number) & max
  let next = pos + 1
  if (value < max) return { value, next }
  for (let shift = 0; ; shift += 7) {
    if (next >= input.length) return undefined
    if (shift >= 32) throw new HpackError('an integer over 2^32 - 1')
    const byte = input[next++] as number
    value += (byte & 0x7f) * 2 ** shift
    if (value > 0xffffffff) throw new HpackError('an integer over 2^32 - 1')
    if ((byte & 0x80) === 0) return { value, next }
  }
}

/** RFC 7541 §5.2: a string literal, Huffman-coded or raw, as latin1 (HTTP field bytes one for one). */
function readString(input: Buffer, pos: number): { value: string; next: number } | undefined {
  if (pos >= input.length) return undefined
  const huffman = ((input[pos] as number) & 0x80) !== 0
  const length = readInteger(input, pos, 7)
  if (length === undefined) return undefined
  if (length.value > MAX_STRING_BYTES) throw new HpackError('a string literal over 64 KiB')
  const end = length.next + length.value
  if (end > input.length) return undefined
  if (!huffman) return { value: input.toString('latin1', length.next, end), next: end }
  try {
    return { value: huffmanDecode(input, length.next, end).toString('latin1'), next: end }
  } catch (err) {
    if (err instanceof HuffmanError) throw new HpackError(err.message)
    throw err
  }
}
