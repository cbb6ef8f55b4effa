import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CONFIG_SCHEMA } from './schema.ts'

type Node = Readonly<Record<string, unknown>>

/** Every field with a `default`, and whether Value.Default reaches it: only through typebox types, from the root. */
function defaults(node: Node, path: string, reached: boolean, out: { path: string; reached: boolean }[]): void {
  const typed = reached && '~kind' in node
  if ('default' in node) out.push({ path, reached: typed })
  const children: [string, unknown][] = [
    ...Object.entries((node['properties'] as Node | undefined) ?? {}).map(([k, v]): [string, unknown] => [`${path}.${k}`, v]),
    ...(typeof node['additionalProperties'] === 'object' ? [[`${path}.<name>`, node['additionalProperties']] as [string, unknown]] : []),
    ...(node['items'] === undefined ? [] : [[`${path}[]`, node['items']] as [string, unknown]]),
    ...((node['anyOf'] as unknown[] | undefined) ?? []).map((v, i): [string, unknown] => [`${path}|${i}`, v]),
  ]
  for (const [p, child] of children) defaults(child as Node, p, typed, out)
}

describe('the config schema', () => {
  it('is typebox all the way down to every default, so load fills each in', () => {
    const found: { path: string; reached: boolean }[] = []
    defaults(CONFIG_SCHEMA, '', true, found)
    assert.ok(found.length > 20, `only ${found.length} defaults found`)
    assert.deepEqual(found.filter((d) => !d.reached).map((d) => d.path), [])
  })
})
