import { ESCAPE_START } from './escapes.ts'

/**
 * The forms of a set of secret values that the redactor masks, compiled for one pass over a
 * stream. Each value (a secret, `user:secret`, a rendered header) gives:
 *
 * - the value itself, as UTF-8 bytes;
 * - its base64 and base64url encodings at each of the 3 alignments it can have inside a larger
 *   base64 text (the value starting at byte 0, 1 or 2 of a 3-byte group). A response may echo a
 *   whole request, or a JSON document holding the secret, as one base64 blob, and the sandbox
 *   chooses what comes before the secret (its path, its headers), hence the alignment: all three
 *   are needed. A form starts at the first character made of the value's bits only; the last
 *   character, which may mix in the next byte's bits, is matched as the class of characters
 *   that agree with the value's bits, so it is masked too. The character before the first one
 *   (at alignments 1 and 2) carries 4 or 2 bits of the value's first byte and is left as it is:
 *   as a class it would make nearly every letter a possible start, and hold back most chunks.
 *   Values shorter than MIN_BASE64_VALUE bytes get no base64 forms (they would match by chance).
 *
 * Every byte of a form may appear in the text literally or under any escape of escapes.ts, so
 * percent-, form-, JSON- and HTML-encoded echoes of each form are found without listing them.
 *
 * A form is a sequence of positions; a position accepts one byte or a class of bytes.
 */
export class MaskPatterns {
  /** Per position: the byte it accepts (0-255), or 256 + the index of its class. */
  readonly symbols: Int16Array
  /** Per position: 1 when it is the last of its form. */
  readonly last: Uint8Array
  /** 256 bytes per class: 1 where the class accepts the byte. */
  readonly classes: Uint8Array
  /** For byte b, firstList[firstFrom[b] .. firstFrom[b + 1]) are the forms' first positions that accept b. */
  readonly firstFrom: Int32Array
  readonly firstList: Int32Array
  /**
   * The quick test that lets most bytes pass with one or two look-ups. Per byte: NEVER (no form
   * begins with it), ALWAYS (it may start an escape), or the row of `follows` that says which
   * next bytes can carry on a form that begins with it literally.
   */
  readonly startRow: Int16Array
  readonly follows: Uint8Array
  /** The fewest positions (so bytes) a form has: no shorter text holds one (an escape only lengthens it). Infinity when empty. */
  readonly shortestForm: number

  private constructor(symbols: Int16Array, last: Uint8Array, classes: Uint8Array) {
    this.symbols = symbols
    this.last = last
    this.classes = classes
    let shortest = Number.POSITIVE_INFINITY
    for (let p = 0, start = 0; p < last.length; p++) {
      if (last[p] !== 1) continue
      shortest = Math.min(shortest, p + 1 - start)
      start = p + 1
    }
    this.shortestForm = shortest
    const firsts: number[][] = Array.from({ length: 256 }, () => [])
    for (let p = 0; p < symbols.length; p = this.#next(p)) this.#eachAccepted(p, (b) => void firsts[b]?.push(p))
    this.firstFrom = new Int32Array(257)
    this.firstList = new Int32Array(firsts.reduce((n, f) => n + f.length, 0))
    this.startRow = new Int16Array(256).fill(NEVER)
    const rows: Uint8Array[] = []
    let at = 0
    for (let b = 0; b < 256; b++) {
      this.firstFrom[b] = at
      const starts = firsts[b] ?? []
      for (const p of starts) this.firstList[at++] = p
      if (ESCAPE_START[b] === 1 && symbols.length > 0) this.startRow[b] = ALWAYS
      else if (starts.length > 0) {
        const row = Uint8Array.from(ESCAPE_START)
        for (const p of starts) {
          if (last[p] === 1) row.fill(1)
          else this.#eachAccepted(p + 1, (next) => void (row[next] = 1))
        }
        this.startRow[b] = rows.length
        rows.push(row)
      }
    }
    this.firstFrom[256] = at
    this.follows = new Uint8Array(rows.length * 256)
    rows.forEach((row, i) => this.follows.set(row, i * 256))
  }

  /** The first position of the form after the one `p` begins. */
  #next(p: number): number {
    let q = p
    while (this.last[q] === 0) q++
    return q + 1
  }

  #eachAccepted(p: number, visit: (b: number) => void): void {
    const s = this.symbols[p] ?? 0
    if (s < 256) return visit(s)
    for (let b = 0; b < 256; b++) if (this.classes[(s - 256) * 256 + b] === 1) visit(b)
  }

  /** The forms of every value (empty values are ignored). */
  static of(values: readonly string[]): MaskPatterns {
    const forms = new Map<string, number[]>()
    const classes: Uint8Array[] = []
    const classIndex = new Map<string, number>()
    const classOf = (members: readonly number[]): number => {
      const key = members.join(',')
      let index = classIndex.get(key)
      if (index === undefined) {
        index = classes.length
        const table = new Uint8Array(256)
        for (const m of members) table[m] = 1
        classes.push(table)
        classIndex.set(key, index)
      }
      return 256 + index
    }
    for (const value of values) {
      const bytes = Buffer.from(value, 'utf8')
      if (bytes.length === 0) continue
      add(forms, [...bytes])
      if (bytes.length < MIN_BASE64_VALUE) continue
      for (const alphabet of ALPHABETS) for (let align = 0; align < 3; align++) add(forms, base64Form(bytes, align, alphabet, classOf))
    }
    const all = [...forms.values()]
    const symbols = new Int16Array(all.reduce((n, f) => n + f.length, 0))
    const last = new Uint8Array(symbols.length)
    let p = 0
    for (const form of all) {
      symbols.set(form, p)
      p += form.length
      last[p - 1] = 1
    }
    const table = new Uint8Array(classes.length * 256)
    classes.forEach((c, i) => table.set(c, i * 256))
    return new MaskPatterns(symbols, last, table)
  }

  /** Both sets' forms in one (for a credential's cached forms plus a request's own assertion). */
  static merge(a: MaskPatterns, b: MaskPatterns): MaskPatterns {
    if (b.symbols.length === 0) return a
    if (a.symbols.length === 0) return b
    const shift = a.classes.length / 256
    const symbols = new Int16Array(a.symbols.length + b.symbols.length)
    symbols.set(a.symbols)
    for (let p = 0; p < b.symbols.length; p++) {
      const s = b.symbols[p] ?? 0
      symbols[a.symbols.length + p] = s < 256 ? s : s + shift
    }
    const last = new Uint8Array(symbols.length)
    last.set(a.last)
    last.set(b.last, a.last.length)
    const classes = new Uint8Array(a.classes.length + b.classes.length)
    classes.set(a.classes)
    classes.set(b.classes, a.classes.length)
    return new MaskPatterns(symbols, last, classes)
  }

  get empty(): boolean {
    return this.symbols.length === 0
  }

  /** False when no form can begin anywhere in `bytes` (the redactor's quick test, over a whole text). */
  mayOccurIn(bytes: Uint8Array): boolean {
    for (let i = 0; i < bytes.length; i++) {
      const row = this.startRow[bytes[i] as number] as number
      if (row === ALWAYS || (row !== NEVER && (i + 1 === bytes.length || this.follows[row * 256 + (bytes[i + 1] as number)] === 1))) return true
    }
    return false
  }

  /**
   * The same test over a string, without encoding it: exact while its characters are ASCII (their
   * UTF-8 and latin1 bytes are the character codes); true at the first other character, so the
   * caller encodes and tests the bytes.
   */
  mayOccurInText(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c > 0x7f) return true
      const row = this.startRow[c] as number
      if (row === ALWAYS) return true
      if (row === NEVER) continue
      if (i + 1 === text.length) return true
      const next = text.charCodeAt(i + 1)
      if (next > 0x7f || this.follows[row * 256 + next] === 1) return true
    }
    return false
  }

  /** Whether position p accepts byte b. */
  accepts(p: number, b: number): boolean {
    const s = this.symbols[p] ?? -1
    return s < 256 ? s === b : this.classes[(s - 256) * 256 + b] === 1
  }
}

/** startRow values. */
export const NEVER = -1
export const ALWAYS = -2

/** Values shorter than this get no base64 forms: a short value's encoding turns up by chance. */
export const MIN_BASE64_VALUE = 6

interface Alphabet {
  readonly name: 'base64' | 'base64url'
  readonly chars: string
}
const STANDARD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const ALPHABETS: readonly Alphabet[] = [{ name: 'base64', chars: STANDARD }, { name: 'base64url', chars: `${STANDARD.slice(0, 62)}-_` }]

function add(forms: Map<string, number[]>, form: number[]): void {
  forms.set(String.fromCharCode(...form), form)
}

/**
 * The base64 characters that carry `bytes` when they start at byte `align` of a 3-byte group:
 * from the first character made only of the value's bits, each fixed, to the last, which is the
 * class of every character whose bits agree with the value's when it mixes in the next byte's.
 */
function base64Form(bytes: Buffer, align: number, alphabet: Alphabet, classOf: (members: readonly number[]) => number): number[] {
  const bits = 8 * (align + bytes.length)
  const text = Buffer.concat([Buffer.alloc(align), bytes, Buffer.alloc(2)]).toString(alphabet.name)
  const first = Math.ceil((8 * align) / 6)
  const lastChar = Math.ceil(bits / 6) - 1
  const form: number[] = []
  for (let j = first; j < lastChar; j++) form.push(text.charCodeAt(j))
  // The last character holds `known` of the value's bits, then zeros from the padding bytes.
  const known = bits - 6 * lastChar
  const value = alphabet.chars.indexOf(text[lastChar] ?? '')
  if (known === 6) {
    form.push(alphabet.chars.charCodeAt(value))
  } else {
    const members: number[] = []
    for (let c = 0; c < 64; c++) if (c >> (6 - known) === value >> (6 - known)) members.push(alphabet.chars.charCodeAt(c))
    form.push(classOf(members.sort((x, y) => x - y)))
  }
  return form
}
