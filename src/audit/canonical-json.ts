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

function plain(value: object): Record<string, unknown> {
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('canonicalJson: only plain objects and arrays are supported')
  }
  return value as Record<string, unknown>
}

function isIndexLike(key: string): boolean {
  const first = key.charCodeAt(0)
  return first >= 48 && first <= 57 && /^(0|[1-9]\d*)$/.test(key)
}

/** A plain object's canonical JSON, and the same with one more member, from one pass over it. */
export interface CanonicalPair {
  /** canonicalJson(record). */
  readonly without: string
  /** canonicalJson({ ...record, [key]: value }) for a string `value`. */
  with(value: string): string
}

/**
 * For a record that is hashed without a member and written with it (the audit chain's `hash`):
 * the members are serialised once, in sorted order, and `key` is spliced in at its place.
 * Exactly canonicalJson's text, checked against it in canonical-json.test.ts. `record` must not
 * have `key` itself.
 */
export function canonicalPair(record: Record<string, unknown>, key: string): CanonicalPair {
  const shape = shapeOf(plain(record), key)
  const halves = shape === undefined ? undefined : sortedHalves(record, shape)
  if (halves === undefined) return { without: canonicalJson(record), with: (value) => canonicalJson({ ...record, [key]: value }) }
  // Each half is rebuilt with its keys inserted in sorted order and stringified once (natively):
  // its members' text without the braces, to splice `key` between.
  const before = JSON.stringify(halves.before).slice(1, -1)
  const after = JSON.stringify(halves.after).slice(1, -1)
  const name = `${JSON.stringify(key)}:`
  return {
    without: `{${before}${before !== '' && after !== '' ? ',' : ''}${after}}`,
    with: (value) => `{${before}${before === '' ? '' : ','}${name}${JSON.stringify(value)}${after === '' ? '' : ','}${after}}`,
  }
}

/** The record's members sorting before and after the spliced key, each in sorted order; undefined if a nested value needs canonicalJson's slow path. */
function sortedHalves(record: Record<string, unknown>, shape: Shape): { before: Record<string, unknown>; after: Record<string, unknown> } | undefined {
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  for (let i = 0; i < shape.keys.length; i++) {
    const k = shape.keys[i] as string
    const v = record[k]
    if (v === undefined) continue
    const s = sorted(v)
    if (s === INDEX_LIKE) return undefined
    if (i < shape.at) before[k] = s
    else after[k] = s
  }
  return { before, after }
}

/** A record's keys in canonical order, and how many sort before the spliced key. */
interface Shape {
  readonly keys: readonly string[]
  readonly at: number
}

/**
 * Records come in few shapes (the audit's fields, in the order their producer wrote them), so the
 * sort is done once per shape. Undefined for a shape with an array-index-like key (canonicalJson's
 * slow path) or one that already has the spliced key. A shape is found by its key count and then
 * key by key (property names are interned: a pointer each), never by a joined string, which two
 * shapes can share (no keys and the one key '', or keys holding the separator).
 */
const shapes = new Map<string, Map<number, { readonly own: readonly string[]; readonly shape: Shape | undefined }[]>>()
let shapeCount = 0
const MAX_SHAPES = 256

function shapeOf(record: Record<string, unknown>, key: string): Shape | undefined {
  const own = Object.keys(record)
  let byCount = shapes.get(key)
  const known = byCount?.get(own.length)?.find((entry) => sameKeys(entry.own, own))
  if (known !== undefined) {
    if (known.shape === undefined && own.includes(key)) throw new TypeError(`canonicalPair: the record already has ${key}`)
    return known.shape
  }
  if (own.includes(key)) throw new TypeError(`canonicalPair: the record already has ${key}`)
  const keys = [...own].sort()
  const shape = keys.some(isIndexLike) ? undefined : { keys, at: keys.filter((k) => k < key).length }
  if (shapeCount >= MAX_SHAPES) {
    shapes.clear()
    shapeCount = 0
    byCount = undefined
  }
  if (byCount === undefined) shapes.set(key, (byCount = new Map()))
  const list = byCount.get(own.length) ?? []
  list.push({ own, shape })
  byCount.set(own.length, list)
  shapeCount++
  return shape
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
