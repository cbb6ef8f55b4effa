/**
 * A minimal DER writer (ITU-T X.690), just enough to build X.509 certificates.
 *
 * Deliberately a writer only: keyvalet never parses ASN.1, so no untrusted bytes reach this code.
 * Every helper returns one complete TLV as a Buffer; compose them by nesting calls.
 * Only low tag numbers (< 31) are supported, which is all X.509 needs.
 */

/** One TLV: tag byte, definite length (short or long form), contents. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents)
  const n = body.length
  if (n < 0x80) return Buffer.concat([Buffer.from([tag, n]), body])
  const lengthBytes: number[] = []
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest % 256)
  return Buffer.concat([Buffer.from([tag, 0x80 | lengthBytes.length, ...lengthBytes]), body])
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items)

/** SET OF: DER orders the encoded elements ascending as octet strings (X.690 §11.6). */
export const set = (...items: Buffer[]): Buffer => tlv(0x31, ...[...items].sort(Buffer.compare))

export const nullValue = (): Buffer => Buffer.from([0x05, 0x00])

/** DER TRUE is 0xFF (X.690 §11.1). */
export const boolean = (value: boolean): Buffer => Buffer.from([0x01, 0x01, value ? 0xff : 0x00])

/**
 * Non-negative INTEGER from a bigint or an unsigned big-endian Buffer. Minimal encoding: redundant
 * leading zero bytes are dropped, and one 0x00 is prepended when the high bit is set (else negative).
 */
export function integer(value: bigint | number | Buffer): Buffer {
  let bytes: Buffer
  if (Buffer.isBuffer(value)) {
    bytes = value
  } else {
    const big = BigInt(value)
    if (big < 0n) throw new RangeError('DER integer: only non-negative values are supported')
    const hex = big.toString(16)
    bytes = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex')
  }
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  bytes = bytes.subarray(start)
  if (bytes.length === 0) bytes = Buffer.from([0])
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes])
  return tlv(0x02, bytes)
}

/** OBJECT IDENTIFIER from dotted form: first two arcs packed as 40·a+b, each arc base-128. */
export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new RangeError(`DER oid: malformed ${JSON.stringify(dotted)}`)
  const arcs = dotted.split('.').map(BigInt)
  const [first = 0n, second = 0n, ...rest] = arcs
  if (first < 2n && second > 39n) throw new RangeError(`DER oid: second arc too large in ${dotted}`)
  const out: number[] = []
  for (const arc of [first * 40n + second, ...rest]) {
    const septets = [Number(arc & 0x7fn)]
    for (let v = arc >> 7n; v > 0n; v >>= 7n) septets.unshift(Number(v & 0x7fn) | 0x80)
    out.push(...septets)
  }
  return tlv(0x06, Buffer.from(out))
}

export const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'))

/** PrintableString: A-Z a-z 0-9 space ' ( ) + , - . / : = ? only (X.680 §41.4). */
export function printableString(text: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text)) throw new RangeError('DER printableString: character not allowed')
  return tlv(0x13, Buffer.from(text, 'ascii'))
}

/**
 * X.509 Time (RFC 5280 §4.1.2.5): UTCTime (YYMMDDHHMMSSZ) for years 1950–2049, GeneralizedTime
 * (YYYYMMDDHHMMSSZ) otherwise. Always UTC, whole seconds (sub-second parts are dropped).
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear()
  if (Number.isNaN(year) || year < 0 || year > 9999) throw new RangeError('DER time: date out of range')
  const two = (n: number) => String(n).padStart(2, '0')
  const rest = [date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
  const tail = `${rest.map(two).join('')}Z`
  if (year >= 1950 && year <= 2049) return tlv(0x17, Buffer.from(`${two(year % 100)}${tail}`, 'ascii'))
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, '0')}${tail}`, 'ascii'))
}

/** BIT STRING of whole bytes (keys, signatures): zero unused bits. */
export const bitString = (bytes: Buffer): Buffer => tlv(0x03, Buffer.from([0]), bytes)

/**
 * Named BIT STRING (e.g. keyUsage) from the numbers of the bits that are set (bit 0 = MSB of byte 0).
 * DER drops trailing zero bits (X.690 §11.2.2), so the unused-bits count follows the highest bit set.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return tlv(0x03, Buffer.from([0]))
  const highest = Math.max(...bits)
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1)
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7))
  return tlv(0x03, Buffer.from([7 - (highest & 7)]), bytes)
}

export const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes)

/** [n] EXPLICIT: a constructed context-specific tag wrapping complete TLVs. */
export const explicit = (n: number, ...inner: Buffer[]): Buffer => tlv(0xa0 | checkTag(n), ...inner)

/** [n] IMPLICIT over a primitive type: the contents octets of the underlying type, retagged. */
export const implicit = (n: number, contents: Buffer): Buffer => tlv(0x80 | checkTag(n), contents)

function checkTag(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`DER tag number ${n} not supported`)
  return n
}
