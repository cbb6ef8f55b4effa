/**
 * Canonical JSON: object keys sorted (by UTF-16 code units, as RFC 8785), recursively, no
 * whitespace; strings and numbers as JSON.stringify writes them. Equal values give equal text, so
 * the text can be hashed. Object properties whose value is undefined are omitted (as JSON does).
 * Throws TypeError on what JSON cannot represent faithfully: non-finite numbers, bigint, functions,
 * symbols, undefined outside an object, and objects other than plain objects and arrays.
 */
export function canonicalJson(value: unknown): string {
  // Fast path: rebuild the value with keys inserted in sorted order and stringify once, since
  // JSON.stringify keeps insertion order — except for array-index-like keys ("10" before "9"
  // would be reordered numerically), for which the value is written piece by piece instead.
  const rebuilt = sorted(value)
  return rebuilt === INDEX_LIKE ? piecewise(value) : JSON.stringify(rebuilt)
}

const INDEX_LIKE = Symbol('index-like key')

function sorted(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number')
      return value
    case 'object': {
      if (value === null) return null
      if (Array.isArray(value)) {
        const out: unknown[] = []
        for (const v of value) {
          const s = sorted(v)
          if (s === INDEX_LIKE) return INDEX_LIKE
          out.push(s)
        }
        return out
      }
      const record = plain(value)
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(record).sort()) {
        if (isIndexLike(key)) return INDEX_LIKE
        const v = record[key]
        if (v === undefined) continue
        const s = sorted(v)
        if (s === INDEX_LIKE) return INDEX_LIKE
        out[key] = s
      }
      return out
    }
    default:
      throw new TypeError(`canonicalJson: cannot represent ${typeof value}`)
  }
}

function piecewise(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(sorted(value))
  if (Array.isArray(value)) return `[${value.map((v) => piecewise(v)).join(',')}]`
  const record = plain(value)
  const parts: string[] = []
  for (const key of Object.keys(record).sort()) {
    const v = record[key]
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${piecewise(v)}`)
  }
  return `{${parts.join(',')}}`
}

export function plain(value: object): Record<string, unknown> {
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('canonicalJson: only plain objects and arrays are supported')
  }
  return value as Record<string, unknown>
}

export function isIndexLike(key: string): boolean {
  const first = key.charCodeAt(0)
  return first >= 48 && first <= 57 && /^(0|[1-9]\d*)$/.test(key)
}
