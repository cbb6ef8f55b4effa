/**
 * Whether a decoded path segment reads the same to every upstream, or what some reading makes of it.
 *
 * Servers do not all read a segment as its bytes. The readings modelled here, each seen in the
 * wild on the way to a path traversal:
 *   - Unicode compatibility folding (NFKC): `．．` (U+FF0E) and `‥` (U+2025) become `..`, `／` becomes `/`;
 *   - Windows "best fit" conversion to a code page: `∕` (U+2215) becomes `/`, `¥` and `₩` become `\`;
 *   - trimming: Windows and IIS drop trailing dots and spaces, many frameworks trim whitespace, and
 *     invisible format characters (zero-width space, BOM, soft hyphen...) vanish when rendered;
 *   - NTFS streams: `name:stream` opens `name`, so `..::$INDEX_ALLOCATION` is `..`.
 * A segment is refused when a reading gives it a separator or another structural character, makes
 * it `.`, `..` or only dots, or when it is not itself after trimming (a trailing dot, whitespace
 * at either end). Segments of plain ASCII letters, digits and punctuation skip the folding.
 */

/** Characters that change how a path splits or reads; no reading may introduce one. */
const STRUCTURAL = /[/\\;%?#]/

/** Look-alikes that Windows best-fit code-page conversions turn into separators (NFKC keeps them). */
const BEST_FIT: Readonly<Record<string, string>> = {
  '\u2215': '/', // DIVISION SLASH
  '\u2044': '/', // FRACTION SLASH
  '\u29f8': '/', // BIG SOLIDUS
  '\u2216': '\\', // SET MINUS
  '\u29f9': '\\', // BIG REVERSE SOLIDUS
  '\u00a5': '\\', // YEN SIGN (code page 932)
  '\u20a9': '\\', // WON SIGN (code page 949)
}

/** Whitespace and characters that render as nothing: trimmed or dropped by some readers. */
const INVISIBLE = /[\s\p{Default_Ignorable_Code_Point}]/gu
const EDGE_INVISIBLE = /^[\s\p{Default_Ignorable_Code_Point}]|[\s\p{Default_Ignorable_Code_Point}]$/u
const PRINTABLE_ASCII = /^[\x21-\x7e]*$/
const ONLY_DOTS = /^\.+$/

/**
 * Why `segment` (percent-decoded, free of control characters) is not canonical, as a `why` for
 * path_ambiguous; undefined when every reading leaves it as it is.
 */
export function segmentProblem(segment: string): string | undefined {
  // Printable ASCII has nothing to fold and nothing invisible: the common case stays cheap.
  const plain = PRINTABLE_ASCII.test(segment)
  const read = plain ? segment : fold(segment)
  if (read === undefined) return 'lookalike_character'
  const stem = streamStem(read)
  const visible = (text: string): string => (plain ? text : text.replace(INVISIBLE, ''))
  if (ONLY_DOTS.test(visible(read)) || ONLY_DOTS.test(visible(stem))) return 'dot_like_segment'
  for (const part of stem === read ? [read] : [read, stem]) {
    if (part.endsWith('.')) return 'trailing_dot'
    if (!plain && EDGE_INVISIBLE.test(part)) return 'surrounding_whitespace'
  }
  return undefined
}

/** The segment as NFKC and best-fit conversions read it; undefined when they introduce a structural character. */
function fold(segment: string): string | undefined {
  let out = ''
  for (const ch of segment) {
    if (ch.charCodeAt(0) < 0x80) {
      out += ch
      continue
    }
    const read = BEST_FIT[ch] ?? ch.normalize('NFKC')
    if (STRUCTURAL.test(read)) return undefined
    out += read
  }
  return out.normalize('NFKC')
}

/** The part before an NTFS stream name (`name:stream` or `name::$DATA`): the whole segment when it has no ':'. */
function streamStem(segment: string): string {
  const colon = segment.indexOf(':')
  return colon < 0 ? segment : segment.slice(0, colon)
}
