import { canonicalJson, isIndexLike, plain } from './canonical-json.ts'

/** A plain object's canonical JSON, and the same with one more member, from one pass over it. */
export interface CanonicalPair {
  /** canonicalJson(record). */
  readonly without: string
  /** canonicalJson({ ...record, [key]: value }) for a string `value`. */
  with(value: string): string
}

/**
 * For a record that is hashed without a member and written with it (the audit chain's `hash`):
 * its members are written once, in sorted order, and `key` is spliced in at its place. Exactly
 * canonicalJson's text, which is the oracle it is checked against (canonical-pair.test.ts); a
 * record holding an array-index-like key anywhere is left to canonicalJson. `record` must not
 * have `key` itself.
 *
 * Written by shape: records come in few shapes (the audit's fields, in the order their producer
 * set them; decided_on; detail), so each object shape has its keys sorted and their JSON names
 * written once, and a record costs one walk over its values, each written as JSON.stringify
 * writes it, with no sorted copy of the record and no sort.
 */
export function canonicalPair(record: Record<string, unknown>, key: string): CanonicalPair {
  if (Object.hasOwn(plain(record), key)) throw new TypeError(`canonicalPair: the record already has ${key}`)
  const shape = shapeOf(Object.keys(record))
  const at = shape === undefined ? -1 : splicePoint(shape.sorted, key)
  const before = at < 0 ? undefined : members(record, shape as Shape, 0, at)
  const after = before === undefined ? undefined : members(record, shape as Shape, at, (shape as Shape).sorted.length)
  if (before === undefined || after === undefined) return { without: canonicalJson(record), with: (value) => canonicalJson({ ...record, [key]: value }) }
  const name = `${JSON.stringify(key)}:`
  return {
    without: `{${before}${before !== '' && after !== '' ? ',' : ''}${after}}`,
    with: (value) => `{${before}${before === '' ? '' : ','}${name}${JSON.stringify(value)}${after === '' ? '' : ','}${after}}`,
  }
}

/** How many of the sorted keys sort before `key`. */
function splicePoint(sorted: readonly string[], key: string): number {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if ((sorted[mid] as string) < key) low = mid + 1
    else high = mid
  }
  return low
}

/** The text of an object's members sorted[from .. to), without braces; undefined for canonicalJson's slow path. */
function members(value: Record<string, unknown>, shape: Shape, from: number, to: number): string | undefined {
  let out = ''
  for (let i = from; i < to; i++) {
    const v = value[shape.sorted[i] as string]
    if (v === undefined) continue
    const text = write(v)
    if (text === undefined) return undefined
    out += out === '' ? `${shape.names[i]}${text}` : `,${shape.names[i]}${text}`
  }
  return out
}

/** A value's canonical JSON; undefined when it holds an array-index-like key (canonicalJson's slow path). Throws what canonicalJson throws. */
function write(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number')
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) return writeArray(value)
      const shape = shapeOf(Object.keys(plain(value)))
      if (shape === undefined) return undefined
      const text = members(value as Record<string, unknown>, shape, 0, shape.sorted.length)
      return text === undefined ? undefined : `{${text}}`
    }
    default:
      throw new TypeError(`canonicalJson: cannot represent ${typeof value}`)
  }
}

function writeArray(value: readonly unknown[]): string | undefined {
  let out = '['
  for (let i = 0; i < value.length; i++) {
    const text = write(value[i])
    if (text === undefined) return undefined
    out += i === 0 ? text : `,${text}`
  }
  return `${out}]`
}

/** One object shape: its own keys as Object.keys lists them, the same sorted, and each sorted key's JSON name with its colon. */
interface Shape {
  readonly own: readonly string[]
  readonly sorted: readonly string[]
  readonly names: readonly string[]
}

/** Known shapes by key count, found by comparing keys (property names are interned: a pointer each). Undefined: a shape with an array-index-like key. */
const shapes = new Map<number, (Shape | { readonly own: readonly string[]; readonly sorted?: undefined })[]>()
let shapeCount = 0
const MAX_SHAPES = 256

function shapeOf(own: string[]): Shape | undefined {
  const known = shapes.get(own.length)
  if (known !== undefined) {
    for (const shape of known) if (sameKeys(shape.own, own)) return shape.sorted === undefined ? undefined : shape
  }
  const shape = own.some(isIndexLike) ? { own } : { own, sorted: [...own].sort(), names: [] as string[] }
  if (shape.sorted !== undefined) for (const k of shape.sorted) shape.names.push(`${JSON.stringify(k)}:`)
  if (shapeCount >= MAX_SHAPES) {
    shapes.clear()
    shapeCount = 0
  }
  const list = shapes.get(own.length) ?? []
  list.push(shape)
  shapes.set(own.length, list)
  shapeCount++
  return shape.sorted === undefined ? undefined : (shape as Shape)
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
