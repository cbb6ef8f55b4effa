import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Type from 'typebox'
import { fillDefaults } from './defaults.ts'
import * as S from 'typebox/schema'
import { Defaulted, NamedMap } from './builders.ts'

const ENTRY = Type.Object({
  pattern: Type.Optional(Type.String()),
  required: Defaulted(Type.Boolean({ default: false })),
}, { additionalProperties: false })

describe('Defaulted', () => {
  it('leaves the field out of required, and fillDefaults fills it in', () => {
    assert.deepEqual(ENTRY.required, undefined)
    assert.deepEqual(fillDefaults(ENTRY, {}), { required: false })
    assert.deepEqual(fillDefaults(ENTRY, { required: true }), { required: true })
  })

  it('refuses a type without a default', () => {
    assert.throws(() => Defaulted(Type.Boolean()), /no default/)
  })

  it('fills a defaulted block, then the defaults inside it', () => {
    const outer = Type.Object({ limits: Defaulted(Type.Object({ n: Defaulted(Type.Integer({ default: 3 })) }, { default: {} })) })
    assert.deepEqual(fillDefaults(outer, {}), { limits: { n: 3 } })
  })
})

describe('NamedMap', () => {
  const map = NamedMap(ENTRY, { description: 'by name', propertyNames: { pattern: '^[a-z]+$' } })

  it('fills the defaults of every entry', () => {
    assert.deepEqual(fillDefaults(map, { a: {}, b: { required: true } }), { a: { required: false }, b: { required: true } })
  })

  it('is an object with additionalProperties (not patternProperties), so unknown fields of an entry and bad names are errors', () => {
    const schema = Object.fromEntries(Object.entries(map))
    assert.equal(schema['type'], 'object')
    assert.equal(schema['additionalProperties'], ENTRY)
    assert.equal(schema['patternProperties'], undefined)
    const validator = S.Compile(map as unknown as S.XSchema)
    assert.equal(validator.Check({ a: { required: true } }), true)
    assert.equal(validator.Check({ a: { typo: 1 } }), false)
    assert.equal(validator.Check({ A: {} }), false)
  })
})
