/**
 * Canonical JSON: object keys sorted (by UTF-16 code units, as RFC 8785), recursively, no
 * whitespace; strings and numbers as JSON.stringify writes them. Equal values give equal text, so
 * the text can be hashed. Object properties whose value is undefined are omitted (as JSON does).
 * Throws TypeError on what JSON cannot represent faithfully: non-finite numbers, bigint, functions,
 * symbols, undefined outside an object, and objects other than plain objects and arrays.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number')
      return JSON.stringify(value)
    case 'object':
      if (value === null) return 'null'
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`
      return canonicalObject(value)
    default:
      throw new TypeError(`canonicalJson: cannot represent ${typeof value}`)
  }
}

function canonicalObject(value: object): string {
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('canonicalJson: only plain objects and arrays are supported')
  }
  const record = value as Record<string, unknown>
  const parts: string[] = []
  for (const key of Object.keys(record).sort()) {
    const v = record[key]
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`)
  }
  return `{${parts.join(',')}}`
}
