/**
 * Two typebox builders the config schema needs beyond typebox's own. `Static<>` of the schema is
 * the configuration as the compile steps see it: after load.ts applied every default once
 * (fillDefaults, defaults.ts), which reaches a field only through typebox builders, never through a plain
 * JSON Schema object.
 */

import Type, { type Static, type TSchema, type TUnsafe } from 'typebox'

/**
 * A field the file may leave out, whose `default` (given in its options) the loader puts in its
 * place: optional in the schema (not `required`; the reference shows the default), present in
 * `Static<>`.
 */
export function Defaulted<T extends TSchema>(type: T): T {
  if (!('default' in type)) throw new Error('Defaulted: the type has no default')
  // Optional at run time (validation, fillDefaults), required in the type: it is always there after load.
  return Type.Optional(type) as unknown as T
}

/**
 * An object of named entries of one schema (`connectors`, a rule's `query`): `additionalProperties`
 * rather than `Type.Record`'s `patternProperties`, so that fillDefaults fills each entry's
 * defaults and the reference documents it as a map. `propertyNames` constrains the names.
 */
export function NamedMap<T extends TSchema>(entry: T, options: { readonly description: string; readonly propertyNames?: Record<string, unknown>; readonly default?: Record<string, never> }): TUnsafe<Record<string, Static<T>>> {
  return Type.Unsafe<Record<string, Static<T>>>(Type.Object({}, { ...options, additionalProperties: entry }))
}
