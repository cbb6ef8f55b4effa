import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CONFIG_SCHEMA } from './schema.ts'

/** Every field with a `default`, and whether fillDefaults (schema-kit/defaults.ts) reaches it: only through typebox types, from the root. */
function defaults(node: object, path: string, reached: boolean, out: { path: string; reached: boolean }[]): void {
  const typed = reached && '~kind' in node
  const keys = new Map(Object.entries(node))
  const anyOf: unknown = keys.get('anyOf')
  if (keys.has('default')) out.push({ path, reached: typed })
  const children: [string, unknown][] = [
    ...Object.entries(keys.get('properties') ?? {}).map(([k, v]): [string, unknown] => [`${path}.${k}`, v]),
    [`${path}.<name>`, keys.get('additionalProperties')],
    [`${path}[]`, keys.get('items')],
    ...(Array.isArray(anyOf) ? anyOf : []).map((v, i): [string, unknown] => [`${path}|${i}`, v]),
  ]
  for (const [p, child] of children) if (typeof child === 'object' && child !== null) defaults(child, p, typed, out)
}

describe('the config schema', () => {
  it('is typebox all the way down to every default, so load fills each in', () => {
    const found: { path: string; reached: boolean }[] = []
    defaults(CONFIG_SCHEMA, '', true, found)
    assert.ok(found.length > 20, `only ${found.length} defaults found`)
    assert.deepEqual(found.filter((d) => !d.reached).map((d) => d.path), [])
  })
})
