import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { canonicalJson } from './canonical-json.ts'

describe('canonicalJson', () => {
  it('sorts keys recursively, without whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}')
  })

  it('gives the same text whatever the insertion order', () => {
    assert.equal(canonicalJson({ x: 1, y: 'two', z: [true] }), canonicalJson({ z: [true], y: 'two', x: 1 }))
  })

  it('writes scalars as JSON does', () => {
    assert.equal(canonicalJson('a"b\n\u2028'), JSON.stringify('a"b\n\u2028'))
    assert.equal(canonicalJson(1.5e-7), '1.5e-7')
    assert.equal(canonicalJson(-0), '0')
    assert.equal(canonicalJson(false), 'false')
    assert.equal(canonicalJson([]), '[]')
    assert.equal(canonicalJson({}), '{}')
  })

  it('sorts by code unit, and omits undefined properties', () => {
    assert.equal(canonicalJson({ b: 1, B: 2, é: 3, a: undefined }), '{"B":2,"b":1,"é":3}')
  })

  it('round-trips through JSON.parse', () => {
    const value = { seq: 3, detail: { nested: ['x', 1, null] }, query_keys: [] }
    assert.equal(canonicalJson(JSON.parse(canonicalJson(value))), canonicalJson(value))
  })

  it('refuses what JSON cannot represent faithfully', () => {
    for (const bad of [Number.NaN, Infinity, 1n, () => 1, Symbol('s'), undefined, new Date(0), new Map(), [undefined]]) {
      assert.throws(() => canonicalJson(bad), TypeError)
    }
  })
})

describe('canonicalJson with array-index-like keys', () => {
  it('sorts them as strings, like every other key', () => {
    assert.equal(canonicalJson({ b: 1, 10: 'x', 9: 'y', a: [{ 2: 0, 1: 0 }] }), '{"10":"x","9":"y","a":[{"1":0,"2":0}],"b":1}')
  })
})
