/**
 * A brute-force model of what the redactor must mask, written without its machinery: every form
 * of a value is a list of positions, each a set of characters; every character is listed with all
 * of its spellings (literal, percent in every case, '+', JSON escapes in every case, HTML
 * references with every zero padding allowed); an occurrence is a run of spellings, found by
 * trying every start. Text is handled as latin1 strings (one char per byte).
 */

/** Every base64 and base64url form of `value` (bytes at alignment 0, 1, 2), found by encoding it between every possible neighbour. */
export function base64Forms(value: Buffer): string[][][] {
  const forms: string[][][] = []
  for (const alphabet of ['base64', 'base64url'] as const) {
    for (let align = 0; align < 3; align++) {
      const tail = (3 - ((align + value.length) % 3)) % 3
      const encode = (before: number[], after: number[]): string => Buffer.concat([Buffer.from(before), value, Buffer.from(after)]).toString(alphabet)
      const zeros = (n: number): number[] => Array.from({ length: n }, () => 0)
      /** Every neighbour that differs from all-zero bytes in one byte (a character spans at most two bytes, one the value's). */
      const oneByteVariants = (n: number): number[][] => [zeros(n), ...zeros(n).flatMap((_, k) => Array.from({ length: 255 }, (_, v) => zeros(n).map((z, i) => (i === k ? v + 1 : z))))]
      const plain = encode(zeros(align), zeros(tail))
      // Characters that change with the bytes before the value are not part of the form.
      const dependsOnBefore = new Set<number>()
      for (const before of oneByteVariants(align)) {
        const other = encode(before, zeros(tail))
        for (let j = 0; j < plain.length; j++) if (other[j] !== plain[j]) dependsOnBefore.add(j)
      }
      const lastWithValue = Math.floor((8 * (align + value.length) - 1) / 6)
      const withEveryAfter = oneByteVariants(tail).map((after) => encode(zeros(align), after))
      const form: string[][] = []
      for (let j = 0; j <= lastWithValue; j++) {
        if (!dependsOnBefore.has(j)) form.push([...new Set(withEveryAfter.map((text) => text[j] ?? ''))])
      }
      forms.push(form)
    }
  }
  return forms
}

/** Every form of `value`: itself, character by character, and its base64 forms when it is long enough. */
export function formsOf(value: string, minBase64: number): string[][][] {
  const raw = [...value].map((c) => [c])
  const bytes = Buffer.from(value, 'utf8')
  return bytes.length >= minBase64 ? [raw, ...base64Forms(bytes)] : [raw]
}

const spelled = new Map<string, string[]>()
function spell(char: string): string[] {
  let ways = spelled.get(char)
  if (ways === undefined) spelled.set(char, (ways = spellings(char)))
  return ways
}

/** Every way a character can be spelled, as latin1 byte strings. */
export function spellings(char: string): string[] {
  const out = new Set<string>()
  const utf8 = [...Buffer.from(char, 'utf8')]
  const perByte = utf8.map((b) => {
    const ways = [String.fromCharCode(b), ...cases(hex(b, 2)).map((h) => `%${h}`)]
    if (b === 0x20) ways.push('+')
    return ways
  })
  for (const way of product(perByte)) out.add(way.join(''))
  const cp = char.codePointAt(0) ?? 0
  const short: Record<string, string> = { '"': '\\"', '\\': '\\\\', '/': '\\/', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' }
  if (short[char] !== undefined) out.add(short[char])
  const units = cp > 0xffff ? [0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff)] : [cp]
  for (const way of product(units.map((u) => cases(hex(u, 4)).map((h) => `\\u${h}`)))) out.add(way.join(''))
  const named: Record<string, string> = { '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }
  if (named[char] !== undefined) out.add(`&${named[char]};`)
  const decimal = String(cp)
  for (let len = decimal.length; len <= 7; len++) out.add(`&#${decimal.padStart(len, '0')};`)
  const hexDigits = cp.toString(16)
  for (let len = hexDigits.length; len <= 6; len++) for (const x of ['x', 'X']) for (const h of cases(hexDigits.padStart(len, '0'))) out.add(`&#${x}${h};`)
  return [...out]
}

/** The text with every occurrence of every form masked ('*' per byte). */
export function oracleMask(text: string, forms: readonly string[][][]): string {
  const masked = [...text]
  for (const form of forms) {
    const positions = form.map((chars) => chars.flatMap(spell))
    for (let start = 0; start < text.length; start++) {
      let frontier = new Set([start])
      for (const ways of positions) {
        const next = new Set<number>()
        for (const at of frontier) for (const way of ways) if (text.startsWith(way, at)) next.add(at + way.length)
        frontier = next
        if (frontier.size === 0) break
      }
      for (const end of frontier) for (let k = start; k < end; k++) masked[k] = '*'
    }
  }
  return masked.join('')
}

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0')
}

/** Every upper/lower-case spelling of a string's letters. */
function cases(text: string): string[] {
  return product([...text].map((c) => (c.toLowerCase() === c.toUpperCase() ? [c] : [c.toLowerCase(), c.toUpperCase()]))).map((p) => p.join(''))
}

function product<T>(lists: readonly T[][]): T[][] {
  return lists.reduce<T[][]>((acc, list) => acc.flatMap((prefix) => list.map((item) => [...prefix, item])), [[]])
}
