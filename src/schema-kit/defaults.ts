/**
 * Fills in a value the `default`s of the typebox schema it was checked against, as typebox's
 * Value.Default does, without loading typebox/value (its ~300 modules of value operations, at
 * every start, for this one walk). It follows typebox's rules for the kinds keyvalet's schemas are
 * built of (a schema's kind is its `~kind`, set by typebox's builders):
 * - a schema with `default`, where the value is undefined: a copy of the default (or what the
 *   default returns, when it is a function);
 * - Array: each item by `items`;
 * - Object: each declared property by its schema, set on the value unless it stays undefined
 *   where the property is optional or has no default; then each other key by an
 *   `additionalProperties` schema;
 * - Record: each key matching its pattern, when the pattern's schema has a default itself; each
 *   other key by an `additionalProperties` schema;
 * - Union: the first variant that, filled in on a copy of the value, the variant accepts; else the
 *   value as it was.
 * Any other kind is left as it is. A kind whose defaults typebox reaches some other way
 * (Intersect, Ref, Cyclic, Tuple) is refused, so that a schema using one fails here at once
 * rather than load without its defaults. Objects are mutated in place, as Value.Default does.
 * schema-kit/defaults.test.ts checks every configuration of the repository against Value.Default.
 */
import * as S from 'typebox/schema'

type Schema = Record<string, unknown>

const UNSUPPORTED = new Set(['Intersect', 'Ref', 'Cyclic', 'Tuple'])

/** Union variants, compiled once each. */
const validators = new WeakMap<object, S.Validator>()

export function fillDefaults(schema: unknown, value: unknown): unknown {
  if (!isRecord(schema)) return value
  const filled = value === undefined && 'default' in schema ? defaultOf(schema) : value
  const kind = schema['~kind']
  if (typeof kind === 'string' && UNSUPPORTED.has(kind)) throw new Error(`fillDefaults: a ${kind} schema is not supported`)
  switch (kind) {
    case 'Array':
      return Array.isArray(filled) ? fillItems(schema, filled) : filled
    case 'Object':
      return isRecord(filled) ? fillObject(schema, filled) : filled
    case 'Record':
      return isRecord(filled) ? fillRecord(schema, filled) : filled
    case 'Union':
      return fillUnion(schema, filled)
    default:
      return filled
  }
}

function defaultOf(schema: Schema): unknown {
  const d = schema['default']
  return typeof d === 'function' ? (d as () => unknown)() : structuredClone(d)
}

function fillItems(schema: Schema, value: unknown[]): unknown[] {
  for (let i = 0; i < value.length; i++) value[i] = fillDefaults(schema['items'], value[i])
  return value
}

function fillObject(schema: Schema, value: Schema): Schema {
  const properties = isRecord(schema['properties']) ? schema['properties'] : {}
  const declared = Object.getOwnPropertyNames(properties)
  for (const key of declared) {
    const property = properties[key]
    const filled = fillDefaults(property, value[key])
    if (filled === undefined && (!isRecord(property) || '~optional' in property || !('default' in property))) continue
    value[key] = filled
  }
  const additional = schema['additionalProperties']
  if (!isRecord(additional)) return value
  for (const key of Object.getOwnPropertyNames(value)) if (!declared.includes(key)) value[key] = fillDefaults(additional, value[key])
  return value
}

function fillRecord(schema: Schema, value: Schema): Schema {
  const patterns = isRecord(schema['patternProperties']) ? schema['patternProperties'] : {}
  const pattern = Object.getOwnPropertyNames(patterns)[0] ?? ''
  const matches = new RegExp(pattern)
  const entry = patterns[pattern]
  if (isRecord(entry) && 'default' in entry) {
    for (const key of Object.getOwnPropertyNames(value)) if (matches.test(key)) value[key] = fillDefaults(entry, value[key])
  }
  const additional = schema['additionalProperties']
  if (!isRecord(additional)) return value
  for (const key of Object.getOwnPropertyNames(value)) if (!matches.test(key)) value[key] = fillDefaults(additional, value[key])
  return value
}

function fillUnion(schema: Schema, value: unknown): unknown {
  const variants = Array.isArray(schema['anyOf']) ? (schema['anyOf'] as unknown[]) : []
  for (const variant of variants) {
    if (!isRecord(variant)) continue
    const filled = fillDefaults(variant, structuredClone(value))
    if (validatorOf(variant).Check(filled)) return filled
  }
  return value
}

function validatorOf(variant: Schema): S.Validator {
  let validator = validators.get(variant)
  if (validator === undefined) {
    validator = S.Compile(variant as S.XSchema)
    validators.set(variant, validator)
  }
  return validator
}

function isRecord(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null
}
