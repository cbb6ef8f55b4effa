import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import Type from 'typebox'
import Value from 'typebox/value'
import { parse } from 'yaml'
import { CONFIG_SCHEMA } from '../config/schema.ts'
import { fillDefaults } from './defaults.ts'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
/** Every configuration in the repository the schema accepts (the refused fixtures are never filled in). */
const CONFIGS = [
  'examples/keyvalet.yaml', 'examples/credentials.yaml', 'deploy/keyvalet.docker.yaml', 'deploy/keyvalet.postgres.yaml',
  'test/fixtures/config/valid-full.yaml', 'test/fixtures/config/valid-minimal.yaml',
]

/** Value.Default on a copy: the reference the walk must agree with. */
const reference = (schema: unknown, value: unknown): unknown => Value.Default(schema as never, structuredClone(value))

describe('fillDefaults: the schema defaults filled in as typebox Value.Default fills them', () => {
  for (const file of CONFIGS) {
    it(`${file}: the same configuration as Value.Default`, () => {
      const raw: unknown = parse(readFileSync(`${REPO}${file}`, 'utf8'))
      const expected = reference(CONFIG_SCHEMA, raw)
      assert.notDeepEqual(expected, raw, 'the file leaves no default to fill in: it checks nothing')
      assert.deepEqual(fillDefaults(CONFIG_SCHEMA, structuredClone(raw)), expected)
    })
  }

  it('an empty configuration and a connector that sets nothing optional', () => {
    for (const raw of [{ version: 1 }, { version: 1, connectors: { c: { upstream: 'https://api.example.test', credential: { secret: 's', inject: 'bearer' }, rules: [] } } }]) {
      assert.deepEqual(fillDefaults(CONFIG_SCHEMA, structuredClone(raw)), reference(CONFIG_SCHEMA, raw))
    }
  })

  it('a union takes the first variant that accepts the value once filled in; an optional field without default stays absent', () => {
    const schema = Type.Object({
      a: Type.Optional(Type.String()),
      b: Type.Union([Type.String(), Type.Object({ n: Type.Number({ default: 1 }), m: Type.Optional(Type.Number()) })]),
      c: Type.Array(Type.Object({ on: Type.Boolean({ default: true }) })),
      d: Type.Record(Type.String(), Type.Object({ x: Type.Number({ default: 2 }) }, { default: {} })),
    })
    for (const value of [{ b: 'text', c: [{}, { on: false }], d: { k: {} } }, { b: {}, c: [], d: { k: { x: 5 }, j: undefined } }, { b: 7, c: [{}], d: {} }]) {
      assert.deepEqual(fillDefaults(schema, structuredClone(value)), reference(schema, value))
    }
    assert.deepEqual(fillDefaults(schema, { b: {}, c: [], d: {} }), { b: { n: 1 }, c: [], d: {} })
  })

  it('refuses a kind whose defaults it does not follow, rather than leave them out', () => {
    assert.throws(() => fillDefaults(Type.Intersect([Type.Object({ a: Type.Number({ default: 1 }) })]), {}), /Intersect schema is not supported/)
  })
})
