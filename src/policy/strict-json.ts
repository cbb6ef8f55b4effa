import type { BodyFacts } from './decision.ts'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * Parses a request body for a schema check, refusing what two JSON parsers could read
 * differently: invalid UTF-8, and duplicate object keys (JSON.parse keeps the last, many
 * upstream parsers the first — a schema check on one and a write from the other would differ).
 * The bytes forwarded are the bytes parsed here, so what was checked is what is sent.
 */
export function parseStrictJson(body: Buffer): BodyFacts {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return { invalid: 'body is not valid UTF-8' }
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { invalid: 'body is not valid JSON' }
  }
  return hasDuplicateKey(text) ? { invalid: 'body has a duplicate object key' } : { json }
}

/**
 * Scans text that JSON.parse already accepted, so it only has to follow strings and nesting:
 * every string directly followed by ':' is a key of the innermost open object.
 */
function hasDuplicateKey(text: string): boolean {
  const stack: (Set<string> | null)[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x7b /* { */) stack.push(new Set())
    else if (c === 0x5b /* [ */) stack.push(null)
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop()
    else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i)
      let j = end + 1
      while (j < text.length && isSpace(text.charCodeAt(j))) j++
      const keys = stack.at(-1)
      if (text.charCodeAt(j) === 0x3a /* : */ && keys != null) {
        const key = JSON.parse(text.slice(i, end + 1)) as string
        if (keys.has(key)) return true
        keys.add(key)
      }
      i = end
    }
  }
  return false
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
