/**
 * The sandbox may not send its own value for the query parameter that carries the credential, in
 * any spelling some server would read as that parameter: the real one would arrive beside it, and
 * which of the two the API takes is the API's choice.
 *
 * `rawQuery` with every piece whose name reads as `name` removed, the rest byte for byte as sent.
 * Pieces are separated by `&` and by `;` (which some servers also split on). A piece's name is
 * what precedes its first `=` (the whole piece without one). It reads as `name` when one of its
 * readings equals one of `name`'s, ignoring case (Unicode, both ways, as Java's equalsIgnoreCase,
 * after NFKC). Readings of a name:
 *   1. form-decoded: `+` is a space, `%hh` a byte in either case (and IIS's `%uhhhh` a
 *      character), percent-decoding repeated (at most 3 times) for servers that decode twice;
 *      the bytes read as UTF-8;
 *   2. cut at the first NUL (C strings);
 *   3. as it is, and cut at the first `[` (array syntax: `key[]`, `key[0][a]` read as `key`);
 *   4. trimmed of white space, with `.`, ` ` and `[` as `_` (PHP's names: `api.key` is `api_key`).
 */
export function withoutParam(rawQuery: string, name: string): string {
  if (rawQuery === '') return rawQuery
  const wanted = readings(name)
  let out = ''
  let kept = 0
  for (const { separator, piece } of pieces(rawQuery)) {
    const eq = piece.indexOf('=')
    if (readings(eq < 0 ? piece : piece.slice(0, eq)).some((r) => wanted.some((w) => sameIgnoringCase(r, w)))) continue
    out += kept++ === 0 ? piece : `${separator}${piece}`
  }
  return out
}

/** `rawQuery` with `name=value` (form-encoded) appended. */
export function withParam(rawQuery: string, name: string, value: string): string {
  const pair = new URLSearchParams({ [name]: value }).toString()
  return rawQuery === '' ? pair : `${rawQuery}&${pair}`
}

function pieces(rawQuery: string): { separator: string; piece: string }[] {
  const out: { separator: string; piece: string }[] = []
  let start = 0
  let separator = ''
  for (let i = 0; i <= rawQuery.length; i++) {
    const c = rawQuery[i]
    if (i < rawQuery.length && c !== '&' && c !== ';') continue
    out.push({ separator, piece: rawQuery.slice(start, i) })
    separator = c ?? ''
    start = i + 1
  }
  return out
}

function readings(rawName: string): string[] {
  const decoded = formDecode(rawName)
  const nul = decoded.indexOf('\0')
  const name = nul < 0 ? decoded : decoded.slice(0, nul)
  const bracket = name.indexOf('[')
  return [...new Set([name, bracket < 0 ? name : name.slice(0, bracket)])].map((n) => n.trim().replace(/[. []/g, '_'))
}

const PERCENT = /%(?:[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/
const PERCENTS = /%(?:([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))/g

/** Bytes are held as latin1 text (one char per byte) until the end, then read as UTF-8. */
function formDecode(raw: string): string {
  let bytes = raw.replaceAll('+', ' ')
  for (let round = 0; round < 3 && PERCENT.test(bytes); round++) {
    bytes = bytes.replace(PERCENTS, (_, byte: string | undefined, unit: string | undefined) =>
      byte !== undefined ? String.fromCharCode(Number.parseInt(byte, 16)) : Buffer.from(String.fromCharCode(Number.parseInt(unit ?? '', 16)), 'utf8').toString('latin1'))
  }
  return Buffer.from(bytes, 'latin1').toString('utf8')
}

function sameIgnoringCase(a: string, b: string): boolean {
  const x = a.normalize('NFKC')
  const y = b.normalize('NFKC')
  return x.toLowerCase() === y.toLowerCase() || x.toUpperCase() === y.toUpperCase()
}
