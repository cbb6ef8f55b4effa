/**
 * Strict classification of an upstream host (no port): a DNS name, a canonical IP literal, or
 * refused.
 *
 * Why strict: libraries disagree about what an IP literal is. inet_aton, curl, Python and the
 * WHATWG URL parser all accept `0177.0.0.1`, `0x7f.1`, `2130706433` or `127.1` as 127.0.0.1, while
 * a naive "is this a name?" check sees a harmless name. Anything keyvalet cannot read in exactly one
 * way is refused, so no component downstream can read it another way.
 *
 * Callers must classify the raw authority they received (CONNECT target, Host header, request
 * target), never `new URL(...).hostname`: WHATWG URL has already rewritten `0x7f000001` to
 * `127.0.0.1` and `0x08.8.8.8` to `8.8.8.8`, which would hide the encoding this module exists to
 * refuse.
 */
import { isIPv4, isIPv6 } from 'node:net'

export type HostClass =
  | { kind: 'name'; name: string }
  | { kind: 'ip'; address: string; family: 4 | 6 }
  | { kind: 'refused'; why: RefusedWhy }

/**
 * Stable reason tokens (for the audit record). The `ipv4_*`, `ipv6_*` and `zone_id` ones are
 * IP-literal refusals (see `isIpLiteralRefusal`); the others are malformed names.
 */
export type RefusedWhy =
  | 'empty'
  | 'too_long'
  | 'not_ascii'
  | 'label_invalid'
  | 'zone_id'
  | 'ipv6_invalid'
  | 'ipv4_leading_zero'
  | 'ipv4_octet_range'
  | 'ipv4_trailing_dot'
  /** Numeric, but not a dotted quad: integer, octal, hex, shortened (`127.1`), `1.2.3.4.5`, `foo.123`. */
  | 'ipv4_ambiguous'

export function isIpLiteralRefusal(why: RefusedWhy): boolean {
  return why === 'zone_id' || why.startsWith('ipv4_') || why.startsWith('ipv6_')
}

const MAX_NAME = 253
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const DIGITS = /^[0-9]+$/
/** What WHATWG URL (and inet_aton) would read as a number: decimal, octal (leading 0) or hex. */
const NUMBER_LIKE = /^(?:[0-9]+|0x[0-9a-f]*)$/

export function classifyHost(host: string): HostClass {
  if (typeof host !== 'string' || host.length === 0) return { kind: 'refused', why: 'empty' }
  // Bound all further work: a name is at most 253 characters (+ a trailing dot), an IPv6 literal
  // with brackets at most 47.
  if (host.length > MAX_NAME + 1) return { kind: 'refused', why: 'too_long' }

  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return { kind: 'refused', why: 'ipv6_invalid' }
    return classifyIpv6(host.slice(1, -1))
  }
  if (host.includes(':')) return classifyIpv6(host)
  if (!/^[\x21-\x7e]+$/.test(host)) return { kind: 'refused', why: 'not_ascii' }

  let name = host.toLowerCase()
  const trailingDot = name.endsWith('.')
  if (trailingDot) name = name.slice(0, -1)
  if (name.length === 0) return { kind: 'refused', why: 'empty' }
  if (name.length > MAX_NAME) return { kind: 'refused', why: 'too_long' }

  const labels = name.split('.')
  if (labels.every((l) => DIGITS.test(l))) {
    if (labels.length !== 4) return { kind: 'refused', why: 'ipv4_ambiguous' }
    for (const l of labels) {
      if (l.length > 1 && l.startsWith('0')) return { kind: 'refused', why: 'ipv4_leading_zero' }
      if (l.length > 3 || Number(l) > 255) return { kind: 'refused', why: 'ipv4_octet_range' }
    }
    if (trailingDot) return { kind: 'refused', why: 'ipv4_trailing_dot' }
    // Belt and braces: the checks above are exactly Node's dotted-quad grammar.
    if (!isIPv4(name)) return { kind: 'refused', why: 'ipv4_ambiguous' }
    return { kind: 'ip', address: name, family: 4 }
  }
  // A final label that reads as a number makes WHATWG URL parse the whole host as IPv4
  // (`0x7f.0.0.1`, `0x7f000001`, `1.2.3.4.5` fails, `foo.123` fails): never a usable name.
  const last = labels[labels.length - 1] ?? ''
  if (NUMBER_LIKE.test(last)) return { kind: 'refused', why: 'ipv4_ambiguous' }
  for (const l of labels) if (!LABEL.test(l)) return { kind: 'refused', why: 'label_invalid' }
  return { kind: 'name', name }
}

function classifyIpv6(inner: string): HostClass {
  if (inner.includes('%')) return { kind: 'refused', why: 'zone_id' }
  // isIPv6 accepts zone ids (refused above) and otherwise only RFC 4291 text forms.
  if (inner.length > 45 || !isIPv6(inner)) return { kind: 'refused', why: 'ipv6_invalid' }
  const bytes = parseIpv6(inner)
  if (bytes === undefined) return { kind: 'refused', why: 'ipv6_invalid' }
  return { kind: 'ip', address: formatIpv6(bytes), family: 6 }
}

/** Four bytes of a canonical dotted quad, or undefined. */
export function parseIpv4(address: string): Uint8Array | undefined {
  if (!isIPv4(address)) return undefined
  const parts = address.split('.').map(Number)
  return Uint8Array.from(parts)
}

/** Sixteen bytes of an IPv6 address (already accepted by isIPv6, no zone id), or undefined. */
export function parseIpv6(address: string): Uint8Array | undefined {
  if (address.includes('%') || !isIPv6(address)) return undefined
  let text = address.toLowerCase()
  const words: number[] = []
  // A trailing dotted quad (`::ffff:1.2.3.4`) stands for the last two 16-bit words.
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  let tailWords: number[] = []
  if (tail.includes('.')) {
    const v4 = parseIpv4(tail)
    if (v4 === undefined) return undefined
    tailWords = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)]
    text = text.slice(0, lastColon + 1)
    // `::1.2.3.4` leaves `::`; `1:2:3:4:5:6:1.2.3.4` leaves `1:2:3:4:5:6:` — drop a lone trailing ':'.
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1)
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const toWords = (s: string): number[] => (s === '' ? [] : s.split(':').map((w) => Number.parseInt(w, 16)))
  const head = toWords(halves[0] ?? '')
  const rest = halves.length === 2 ? toWords(halves[1] ?? '') : []
  const given = head.length + rest.length + tailWords.length
  if (halves.length === 2) {
    if (given > 7) return undefined
    words.push(...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tailWords)
  } else {
    if (given !== 8) return undefined
    words.push(...head, ...tailWords)
  }
  const bytes = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    const w = words[i] ?? -1
    if (!Number.isInteger(w) || w < 0 || w > 0xffff) return undefined
    bytes[2 * i] = w >> 8
    bytes[2 * i + 1] = w & 0xff
  }
  return bytes
}

/** RFC 5952 text: lower-case, longest run of ≥2 zero words compressed; IPv4-mapped as `::ffff:a.b.c.d`. */
export function formatIpv6(bytes: Uint8Array): string {
  const words: number[] = []
  for (let i = 0; i < 8; i++) words.push(((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0))
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`
  }
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = words.map((w) => w.toString(16))
  if (bestLen < 2) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}
