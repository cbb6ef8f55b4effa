import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { CONFIG_SCHEMA } from '../src/config/schema.ts'
import { DOCS_FILE, renderConfigDocs } from './config-docs.ts'

/** Every property name declared anywhere in the schema, with its object's path. */
function properties(node: unknown, at: string, out: [string, string][] = []): [string, string][] {
  if (typeof node !== 'object' || node === null) return out
  const props = (node as { properties?: Record<string, unknown> }).properties ?? {}
  for (const name of Object.keys(props)) out.push([at, name])
  for (const [key, child] of Object.entries(node)) {
    properties(child, key === 'properties' ? at : `${at}/${key}`, out)
  }
  return out
}

test('docs/config.md is up to date', () => {
  assert.equal(readFileSync(DOCS_FILE, 'utf8'), renderConfigDocs(), 'docs/config.md is stale: run npm run docs')
})

test('every property in the schema has a row in the reference', () => {
  const docs = renderConfigDocs()
  const all = properties(CONFIG_SCHEMA, '#')
  assert.ok(all.length > 20, 'the schema walk found the properties')
  for (const [at, name] of all) assert.ok(docs.includes(`| \`${name}\` |`), `${at}: ${name} is not documented`)
})
