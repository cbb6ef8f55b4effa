/**
 * A JSON Schema written in the configuration (a rule's `body`, an MCP tool's `arguments`),
 * compiled once at load into a check that refuses what does not conform.
 *
 * The validator is typebox's (typebox/schema), on draft 2020-12. JSON Schema ignores a keyword it
 * does not know, so a misspelt `maxLenght`, a draft-07 `dependencies` or a `format` nobody
 * implements would silently allow everything: the configuration is refused instead when a schema
 * uses anything outside the subset keyvalet enforces:
 *
 * - applicators: allOf, anyOf, oneOf, not, if/then/else, properties, patternProperties,
 *   additionalProperties, propertyNames, dependentSchemas, items, prefixItems, contains,
 *   unevaluatedItems, unevaluatedProperties;
 * - assertions: type, enum, const, multipleOf, maximum, exclusiveMaximum, minimum,
 *   exclusiveMinimum, maxLength, minLength, pattern, maxItems, minItems, uniqueItems, maxContains,
 *   minContains, maxProperties, minProperties, required, dependentRequired, and `format` for the
 *   formats typebox checks (date-time, email, uri, uuid, ipv4, ...: FORMATS);
 * - references: `$ref` to a JSON pointer in the same schema (`#/$defs/name`; `definitions` holds
 *   them too), never to another document;
 * - annotations, which check nothing: $schema (draft 2020-12 only), $comment, title,
 *   description, default, examples, deprecated, readOnly, writeOnly.
 *
 * Refused: $id, $anchor, $dynamicRef/$dynamicAnchor, $recursiveRef, $vocabulary, draft-07's
 * dependencies and additionalItems, contentEncoding/contentMediaType/contentSchema (annotations
 * a reader could take for checks), an unknown format, and any other keyword.
 */

import * as S from 'typebox/schema'
import { Format } from 'typebox/format'
import type { BodyValidator } from '../model/policy.ts'
import { pointerToPath, type FieldPath } from './field-path.ts'

const DRAFT = 'https://json-schema.org/draft/2020-12/schema'

/** Keywords whose value is one subschema, an array of them, or a map of them. */
const ONE = new Set(['not', 'if', 'then', 'else', 'additionalProperties', 'propertyNames', 'items', 'contains', 'unevaluatedItems', 'unevaluatedProperties'])
const LIST = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems'])
const MAP = new Set(['properties', 'patternProperties', 'dependentSchemas', '$defs', 'definitions'])
const ASSERTIONS = new Set([
  'type', 'enum', 'const', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'maxLength', 'minLength',
  'pattern', 'maxItems', 'minItems', 'uniqueItems', 'maxContains', 'minContains', 'maxProperties', 'minProperties', 'required',
  'dependentRequired', 'format', '$ref',
])
const ANNOTATIONS = new Set(['$schema', '$comment', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly'])

let metaSchema: S.Validator | undefined

/** Compiles `schema`; reports each problem at its place in the schema and returns undefined when there is one. */
export function compileJsonSchema(schema: Record<string, unknown>, problem: (f: FieldPath, m: string) => void): BodyValidator | undefined {
  metaSchema ??= S.Compile(S.Meta[DRAFT] as S.XSchema)
  const [valid, errors] = metaSchema.Errors(schema)
  const first = errors.find((e) => !['anyOf', 'allOf', 'oneOf', 'boolean', '$ref', '$dynamicRef'].includes(e.keyword)) ?? errors[0]
  if (!valid && first !== undefined) {
    const allowed = (first.params as { allowedValues?: unknown[] }).allowedValues
    const message = first.keyword === 'enum' && allowed !== undefined ? `must be one of ${allowed.join(', ')}` : first.message
    problem(pointerToPath(first.instancePath, schema), `not a valid JSON Schema: ${message}`)
    return undefined
  }
  let refused = false
  walk(schema, [], (f, m) => {
    refused = true
    problem(f, m)
  })
  if (refused) return undefined
  let validator: S.Validator
  try {
    validator = S.Compile(schema as S.XSchema)
  } catch (err) {
    problem([], `not a valid JSON Schema: ${(err as Error).message}`)
    return undefined
  }
  return {
    schema,
    check(value) {
      if (validator.Check(value)) return undefined
      const [, errs] = validator.Errors(value)
      const e = errs.find((x) => x.keyword !== 'boolean') ?? errs[0]
      if (e === undefined) return 'does not match the schema'
      // The instance path holds keys the sandbox chose: bound it.
      const where = e.instancePath === '' ? '/' : e.instancePath.slice(0, 120)
      return `${where} ${e.message}`
    },
  }
}

/** Reports every keyword outside the enforced subset (see the file comment), at any depth. */
function walk(schema: unknown, at: FieldPath, problem: (f: FieldPath, m: string) => void): void {
  if (typeof schema === 'boolean' || typeof schema !== 'object' || schema === null) return
  for (const [key, value] of Object.entries(schema)) {
    const here = [...at, key]
    if (ONE.has(key)) walk(value, here, problem)
    else if (LIST.has(key)) (value as unknown[]).forEach((s, i) => walk(s, [...here, i], problem))
    else if (MAP.has(key)) for (const [name, s] of Object.entries(value as Record<string, unknown>)) walk(s, [...here, name], problem)
    else if (key === '$schema' && value !== DRAFT) problem(here, `keyvalet checks JSON Schema draft 2020-12 only ($schema: ${DRAFT}, or leave it out)`)
    else if (key === '$ref' && (typeof value !== 'string' || !value.startsWith('#/'))) problem(here, 'only a reference inside the same schema (#/$defs/name) is resolved')
    else if (key === 'format' && typeof value === 'string' && !Format.Has(value)) problem(here, `format ${JSON.stringify(value)} is not checked by keyvalet (checked: ${FORMATS.join(', ')})`)
    else if (!ASSERTIONS.has(key) && !ANNOTATIONS.has(key)) problem(here, `keyword ${JSON.stringify(key)} is not enforced by keyvalet, so the schema would not mean what it says (docs/config.md lists what is)`)
  }
}

/** The formats a `format` keyword may name. */
export const FORMATS = [
  'date', 'date-time', 'duration', 'email', 'hostname', 'idn-email', 'idn-hostname', 'ipv4', 'ipv6', 'iri', 'iri-reference',
  'json-pointer', 'json-pointer-uri-fragment', 'regex', 'relative-json-pointer', 'time', 'uri', 'uri-reference', 'uri-template', 'url', 'uuid',
].filter((f) => Format.Has(f))
