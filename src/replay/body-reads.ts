/**
 * Which parts of a JSON body a JSON Schema looks at (the subset schema-kit/json-schema.ts
 * enforces), as JSON pointers with how much of each: its JSON type, its key names, whether it is
 * there, or its whole value. Replay records those parts of a body a rule's schema read
 * (body-snapshot.ts), and decides a body again only when the new schema reads nothing else.
 *
 * Over-approximates, never under: a keyword whose reach is wider than its place (items,
 * patternProperties, a schema for additional properties, a $ref past REF_DEPTH) reads the whole
 * value where it stands.
 */

export type ReadKind = 'presence' | 'type' | 'keys' | 'value'
export interface BodyRead {
  /** A JSON pointer ('' is the whole body). */
  readonly at: string
  readonly kind: ReadKind
}

const TYPE_ONLY = new Set(['type'])
const KEYS = new Set(['propertyNames', 'minProperties', 'maxProperties', 'dependentRequired'])
const SUBSCHEMAS_HERE = new Set(['allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else'])
const NOTHING = new Set(['$schema', '$comment', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions'])
const REF_DEPTH = 16

export function bodyReads(schema: Readonly<Record<string, unknown>>): BodyRead[] {
  const reads = new Map<string, BodyRead>()
  const add = (at: string, kind: ReadKind): void => void reads.set(`${kind} ${at}`, { at, kind })
  const visit = (node: unknown, at: string, refs: number): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return // true / false: no part read
    for (const [keyword, value] of Object.entries(node as Record<string, unknown>)) {
      if (NOTHING.has(keyword)) continue
      if (TYPE_ONLY.has(keyword)) add(at, 'type')
      else if (KEYS.has(keyword)) add(at, 'keys')
      else if (keyword === 'required') for (const name of Array.isArray(value) ? value : []) add(child(at, String(name)), 'presence')
      else if (keyword === 'properties' && isMap(value)) {
        for (const [name, sub] of Object.entries(value)) {
          add(child(at, name), 'presence')
          visit(sub, child(at, name), refs)
        }
      } else if ((keyword === 'additionalProperties' || keyword === 'unevaluatedProperties') && value === false) add(at, 'keys')
      else if (SUBSCHEMAS_HERE.has(keyword)) for (const sub of Array.isArray(value) ? value : [value]) visit(sub, at, refs)
      else if (keyword === '$ref' && typeof value === 'string' && refs < REF_DEPTH) visit(resolve(schema, value), at, refs + 1)
      // Every other keyword (enum, pattern, items, patternProperties, a schema for additional
      // properties, a $ref too deep or elsewhere, ...) reads the whole value where it stands.
      else add(at, 'value')
    }
  }
  visit(schema, '', 0)
  return [...reads.values()]
}

export function child(at: string, name: string): string {
  return `${at}/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`
}

/** The pointer's reference tokens, unescaped. */
export function tokens(at: string): string[] {
  return at === '' ? [] : at.slice(1).split('/').map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'))
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A `$ref` within the schema (`#/$defs/name`); anything else resolves to nothing, read whole by the caller. */
function resolve(schema: Readonly<Record<string, unknown>>, ref: string): unknown {
  if (!ref.startsWith('#')) return { $unresolved: true }
  let node: unknown = schema
  for (const token of tokens(ref.slice(1))) {
    if (!isMap(node)) return { $unresolved: true }
    node = node[token]
  }
  return node ?? { $unresolved: true }
}
