import type { BodyFacts } from './decision.ts'

/** A leading byte-order mark is kept, so that it is refused rather than silently dropped. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * How deep arrays and objects may nest. The checks after parsing (the schema, the attribution
 * rewrite) walk the value recursively; common upstream parsers stop near here too (serde_json
 * at 128, Ruby's JSON at 100), so no real API body comes close.
 */
export const MAX_JSON_DEPTH = 128

/**
 * Parses a request body for a schema check, refusing what two JSON parsers could read
 * differently: invalid UTF-8, a byte-order mark (RFC 8259 §8.1: senders must not add one; some
 * parsers skip it, others refuse the body), and duplicate object keys (JSON.parse keeps the last,
 * many upstream parsers the first — a schema check on one and a write from the other would
 * differ); a number too large for a double (JSON.parse makes 1e400 Infinity, others refuse it or
 * keep it exact, and nothing downstream can record or compare Infinity); and a nesting deeper
 * than MAX_JSON_DEPTH. The bytes forwarded are the bytes parsed
 * here, so what was checked is what is sent.
 */
export function parseStrictJson(body: Buffer): BodyFacts {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return { invalid: 'body is not valid UTF-8' }
  }
  if (text.charCodeAt(0) === 0xfeff) return { invalid: 'body starts with a byte-order mark' }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { invalid: 'body is not valid JSON' }
  }
  const problem = structureProblem(text) ?? (mayOverflow(text) && hasInfinity(json, 0) ? 'body has a number too large for a double' : undefined)
  return problem === undefined ? { json } : { invalid: problem }
}

/** A JSON number reaches Infinity only with an exponent or more than 308 digits. */
function mayOverflow(text: string): boolean {
  return text.length > 308 || text.includes('e') || text.includes('E')
}

/** Walks a parsed value (its depth already bounded by structureProblem). */
function hasInfinity(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return !Number.isFinite(value)
  if (typeof value !== 'object' || value === null || depth > MAX_JSON_DEPTH) return false
  for (const item of Array.isArray(value) ? value : Object.values(value)) if (hasInfinity(item, depth + 1)) return true
  return false
}

/**
 * Scans text that JSON.parse already accepted, so it only has to follow strings and nesting:
 * every string directly followed by ':' is a key of the innermost open object.
 */
function structureProblem(text: string): string | undefined {
  const stack: (Set<string> | null)[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length === MAX_JSON_DEPTH) return `body nests deeper than ${MAX_JSON_DEPTH} levels`
      stack.push(c === 0x7b ? new Set() : null)
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop()
    else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i)
      let j = end + 1
      while (j < text.length && isSpace(text.charCodeAt(j))) j++
      const keys = stack.at(-1)
      if (text.charCodeAt(j) === 0x3a /* : */ && keys != null) {
        const key = JSON.parse(text.slice(i, end + 1)) as string
        if (keys.has(key)) return 'body has a duplicate object key'
        keys.add(key)
      }
      i = end
    }
  }
  return undefined
}

/** Index of the closing quote of the string starting at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x5c /* \ */) i++
    else if (c === 0x22) return i
  }
  return text.length
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}
