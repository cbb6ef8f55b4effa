/**
 * The escapes under which a character of a secret can be written in a response, decoded at one
 * offset. Text is read as bytes; at each offset there is the literal byte and, when an escape
 * starts there, the bytes it stands for (UTF-8, so a `\u00e9` reads like `é` written raw):
 *
 * - percent-encoding `%hh` (either case of hex digits) and form encoding's `+` for a space;
 * - JSON string escapes: `\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t`, and `\uXXXX` for any character
 *   (either case; a surrogate pair `\uD83D\uDE00` as one character);
 * - HTML/XML character references: `&amp;` `&lt;` `&gt;` `&quot;` `&apos;`, `&#NNN;` (at most 7
 *   digits) and `&#xHHH;` / `&#XHHH;` (at most 6 hex digits).
 *
 * One layer only: `%252F` is `%2F`, not `/`.
 */

/** The longest escape, in bytes: a JSON surrogate pair. */
export const MAX_ESCAPE_BYTES = 12

/** Bytes that may start an escape. */
export const ESCAPE_START: Uint8Array = (() => {
  const table = new Uint8Array(256)
  for (const c of '%+\\&') table[c.charCodeAt(0)] = 1
  return table
})()

const JSON_SHORT: Readonly<Record<number, number>> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 }
const NAMED: readonly (readonly [string, number])[] = [['amp;', 0x26], ['lt;', 0x3c], ['gt;', 0x3e], ['quot;', 0x22], ['apos;', 0x27]]

/** What `read` found: `length` bytes of input stand for `count` bytes in `bytes`. */
export class EscapeReader {
  readonly bytes = new Uint8Array(4)
  count = 0
  length = 0

  /**
   * Decodes the escape at buf[at] (buf holds bytes up to `end`). Returns 1 when one is there, 0
   * when there is none, -1 when more bytes are needed to tell (and `ended` is false).
   */
  read(buf: Uint8Array, at: number, end: number, ended: boolean): -1 | 0 | 1 {
    const need = (n: number): boolean => at + n <= end
    const more = ended ? 0 : -1
    switch (buf[at]) {
      case 0x25: {
        if (!need(3)) return hexRun(buf, at + 1, end) === end - at - 1 ? more : 0
        const value = hexValue(buf, at + 1, 2)
        return value < 0 ? 0 : this.#byte(3, value)
      }
      case 0x2b:
        return this.#byte(1, 0x20)
      case 0x5c: {
        if (!need(2)) return more
        const next = buf[at + 1] ?? 0
        const short = JSON_SHORT[next]
        if (short !== undefined) return this.#set(2, short)
        if (next !== 0x75) return 0
        if (!need(6)) return hexRun(buf, at + 2, end) === end - at - 2 ? more : 0
        const unit = hexValue(buf, at + 2, 4)
        if (unit < 0 || (unit >= 0xdc00 && unit <= 0xdfff)) return 0
        if (unit < 0xd800 || unit > 0xdbff) return this.#set(6, unit)
        // A high surrogate counts only with its low half: `\uD83D\uDE00`.
        for (let k = 6; k < 12; k++) {
          if (at + k >= end) return more
          const b = buf[at + k] ?? 0
          if (k === 6 ? b !== 0x5c : k === 7 ? b !== 0x75 : HEX[b] === 0xff) return 0
        }
        const low = hexValue(buf, at + 8, 4)
        if (low < 0xdc00 || low > 0xdfff) return 0
        return this.#set(12, 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
      }
      case 0x26:
        return this.#reference(buf, at, end, more)
      default:
        return 0
    }
  }

  /** `&name;`, `&#digits;`, `&#xhex;`. */
  #reference(buf: Uint8Array, at: number, end: number, more: -1 | 0): -1 | 0 | 1 {
    const second = buf[at + 1]
    if (second === undefined || at + 1 >= end) return more
    if (second !== 0x23) {
      for (const [name, value] of NAMED) {
        let k = 0
        while (k < name.length && at + 1 + k < end && buf[at + 1 + k] === name.charCodeAt(k)) k++
        if (k === name.length) return this.#set(1 + k, value)
        if (at + 1 + k >= end) return more
      }
      return 0
    }
    const hex = at + 2 < end && (buf[at + 2] === 0x78 || buf[at + 2] === 0x58)
    if (at + 2 >= end) return more
    const digitsAt = at + (hex ? 3 : 2)
    const max = hex ? 6 : 7
    let value = 0
    let k = 0
    for (; k <= max; k++) {
      if (digitsAt + k >= end) return more
      const b = buf[digitsAt + k] ?? 0
      if (b === 0x3b) break
      const digit = hex ? HEX[b] ?? 0xff : b >= 0x30 && b <= 0x39 ? b - 0x30 : 0xff
      if (digit === 0xff || k === max) return 0
      value = value * (hex ? 16 : 10) + digit
    }
    if (k === 0 || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return 0
    return this.#set(digitsAt + k + 1 - at, value)
  }

  /** Records an escape of `length` bytes standing for one byte (percent-encoding stands for bytes, not characters). */
  #byte(length: number, value: number): 1 {
    this.length = length
    this.bytes[0] = value
    this.count = 1
    return 1
  }

  /** Records an escape of `length` bytes standing for code point `cp`, as UTF-8; returns 1. */
  #set(length: number, cp: number): 1 {
    this.length = length
    const b = this.bytes
    if (cp < 0x80) {
      b[0] = cp
      this.count = 1
    } else if (cp < 0x800) {
      b[0] = 0xc0 | (cp >> 6)
      b[1] = 0x80 | (cp & 0x3f)
      this.count = 2
    } else if (cp < 0x10000) {
      b[0] = 0xe0 | (cp >> 12)
      b[1] = 0x80 | ((cp >> 6) & 0x3f)
      b[2] = 0x80 | (cp & 0x3f)
      this.count = 3
    } else {
      b[0] = 0xf0 | (cp >> 18)
      b[1] = 0x80 | ((cp >> 12) & 0x3f)
      b[2] = 0x80 | ((cp >> 6) & 0x3f)
      b[3] = 0x80 | (cp & 0x3f)
      this.count = 4
    }
    return 1
  }
}

/** Hex digit value per byte, 0xff for anything else. */
const HEX: Uint8Array = (() => {
  const table = new Uint8Array(256).fill(0xff)
  for (let d = 0; d < 16; d++) {
    table['0123456789abcdef'.charCodeAt(d)] = d
    table['0123456789ABCDEF'.charCodeAt(d)] = d
  }
  return table
})()

/** The value of `digits` hex digits at buf[at], or -1. */
function hexValue(buf: Uint8Array, at: number, digits: number): number {
  let value = 0
  for (let k = 0; k < digits; k++) {
    const d = HEX[buf[at + k] ?? 0] ?? 0xff
    if (d === 0xff) return -1
    value = value * 16 + d
  }
  return value
}

/** How many hex digits follow from buf[at], up to `end`. */
function hexRun(buf: Uint8Array, at: number, end: number): number {
  let k = 0
  while (at + k < end && (HEX[buf[at + k] ?? 0] ?? 0xff) !== 0xff) k++
  return k
}
