/** The `attribution` block of a connector: its schema (merged into config/schema.ts) and its compile step. */

import Type, { type Static } from 'typebox'
import type { FieldPath } from '../schema-kit/field-path.ts'
import { TOKEN } from '../schema-kit/patterns.ts'
import type { AttributionOptions } from '../model/options.ts'
import { Defaulted } from '../schema-kit/builders.ts'

/** Dot paths of plain keys: `user`, `metadata.user_id`. */
const DOT_PATH = '^[A-Za-z0-9_-]{1,64}(\\.[A-Za-z0-9_-]{1,64}){0,7}$'
/** Keys that would reach an object's prototype instead of one of its own members. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

const dotPath = () => Type.String({ pattern: DOT_PATH, errorMessage: 'must be a dot path of JSON keys such as user or metadata.user_id' })

export const ATTRIBUTION_BLOCK = Type.Object({
  body_field: Type.Optional(Type.Union([dotPath(), Type.Array(dotPath(), { minItems: 1, maxItems: 8, uniqueItems: true })], {
    description:
      'JSON body field(s) set to the user value, as dot paths: user and safety_identifier for OpenAI, metadata.user_id for Anthropic. Missing objects on the way are created. A request with a body must then send a JSON object (content-type application/json, no content coding), read whole up to limits.max_body_inspect_bytes.',
  })),
  header: Type.Optional(Type.String({ pattern: TOKEN, errorMessage: 'must be an HTTP header name', description: 'A request header set to the user value, e.g. X-User-Id.' })),
  value: Defaulted(Type.Enum(['user', 'hashed'], {
    default: 'user',
    description:
      "user: the session's user id as is. hashed: a pseudonym, the first 128 bits of HMAC-SHA256 of the user id under a keyvalet key (kept in the vault as keyvalet.attribution-key), in hex: stable for a user across requests, sessions and connectors, meaningless without the key. Default user.",
  })),
}, {
  additionalProperties: false,
  description:
    "Writes the invoking user's id into each request, for model providers' per-user cost attribution and abuse reporting: into JSON body fields and/or a header. A request that already names another user is refused (attribution_conflict); the same user is fine. See docs/credentials.md.",
})

/** `reserved`: lower-case header names the attribution may not take (framing headers, credential and assertion slots). */
export function compileAttribution(raw: Static<typeof ATTRIBUTION_BLOCK>, reserved: ReadonlySet<string>, problem: (f: FieldPath, m: string) => void): AttributionOptions {
  const list = raw.body_field === undefined ? [] : typeof raw.body_field === 'string' ? [raw.body_field] : raw.body_field
  const bodyFields = list.map((f) => f.split('.'))
  if (list.length === 0 && raw.header === undefined) problem([], 'needs body_field, header or both')
  bodyFields.forEach((path, i) => {
    const at: FieldPath = typeof raw.body_field === 'string' ? ['body_field'] : ['body_field', i]
    if (path.some((k) => UNSAFE_KEYS.has(k))) problem(at, `${list[i]} names a key that is not allowed (__proto__, constructor, prototype)`)
    const clash = bodyFields.find((other, j) => j !== i && other.length < path.length && other.every((k, n) => path[n] === k))
    if (clash !== undefined) problem(at, `${list[i]} lies inside ${clash.join('.')}, which is set to the user value itself`)
  })
  const header = raw.header?.toLowerCase()
  if (header !== undefined && reserved.has(header)) problem(['header'], `${header} cannot carry the user (Host, hop-by-hop headers and the connector's credential and assertion headers are refused)`)
  return { bodyFields, header, value: raw.value }
}
