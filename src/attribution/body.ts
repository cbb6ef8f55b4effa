import { parseStrictJson } from '../policy/strict-json.ts'

export type BodyAttribution =
  | { readonly body: Buffer }
  | { readonly conflict: string }
  | { readonly invalid: string }

// Not yet in TypeScript's lib: JSON.rawJSON (ES2025 JSON.parse source text access, V8 ≥ 11.4).
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON

/**
 * Sets each field (a path of keys) of a JSON object body to `value`. A field that already holds
 * one of `same` (the user, in raw or hashed form) is set too; any other value means the body
 * names someone else: `conflict` with the field, never overwritten. A missing field, a null one,
 * or missing objects on the way are created. Parsing is strict (UTF-8, no duplicate keys) and
 * numbers are written back from their source text, so nothing but the fields changes in meaning.
 */
export function attributeBody(body: Buffer, fields: readonly (readonly string[])[], value: string, same: ReadonlySet<string>): BodyAttribution {
  const strict = parseStrictJson(body)
  if ('invalid' in strict) return strict
  // Parsed again, keeping each number's source text (JSON.parse alone would round 2^53+ integers).
  const json: unknown = JSON.parse(body.toString('utf8'), (_key, v: unknown, context?: { source?: string }) =>
    typeof v === 'number' && context?.source !== undefined ? rawJSON(context.source) : v)
  if (!isObject(json)) return { invalid: 'body is not a JSON object' }
  for (const path of fields) {
    let parent: Record<string, unknown> = json
    for (const key of path.slice(0, -1)) {
      const next = Object.hasOwn(parent, key) ? parent[key] : undefined
      if (next === undefined || next === null) parent = parent[key] = {}
      else if (isObject(next)) parent = next
      else return { invalid: `${path.join('.')}: ${key} is not an object` }
    }
    const leaf = path.at(-1) ?? ''
    const present = Object.hasOwn(parent, leaf) ? parent[leaf] : undefined
    if (present !== undefined && present !== null && !(typeof present === 'string' && same.has(present))) return { conflict: path.join('.') }
    parent[leaf] = value
  }
  return { body: Buffer.from(JSON.stringify(json), 'utf8') }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype
}
