import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { canonicalJson, canonicalPair } from './canonical-json.ts'

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

/** Three audit records as a real run wrote them (an allowed GET, one with a query, a policy denial), in their producer's member order, without their hash. */
function realRecords(i: number): Record<string, unknown>[] {
  const common = { request_id: `req_2f9889c${i}`, mode: 'gateway', session: 'ses_76bc20cf0a7239f0', agent: 'test-agent', user: 'alice', workspace: 'acme', task: 'task-1', connector: 'echo', method: 'GET' }
  const decided = (segments: string[]) => ({ grants: ['echo:read'], segments, header_names: ['host', 'connection', 'authorization'], headers: {}, carries_body: false })
  const chain = { instance: 'ins_5bad8cde31256b6c', seq: i, time: '2026-12-07T06:39:06.812Z', prev: '0'.repeat(64) }
  return [
    { ...common, path: '/items/1', query_keys: [], decision: 'allow', reason: 'rule_matched', rule: 'read-items', credential: 'echo-token', status: 200, upstream_status: 200, error: null, bytes_in: 0, bytes_out: 269, redactions: 1, latency_ms: 15.265738, trace_id: '95fbd98bacb9f2b4d79c62db9ce43b11', config_version: 'cfg_379180edf2be9003', decided_on: decided(['items', '1']), ...chain },
    { ...common, path: '/items/1', query_keys: ['x', 'y'], decision: 'allow', reason: 'rule_matched', rule: 'read-items', credential: 'echo-token', status: 200, upstream_status: 200, error: null, bytes_in: 0, bytes_out: 277, redactions: 1, latency_ms: 1.969448, trace_id: '5e8f0dfa4034bd9400693314b6b4f721', config_version: 'cfg_379180edf2be9003', decided_on: decided(['items', '1']), ...chain },
    { ...common, path: '/nope', query_keys: [], decision: 'deny', reason: 'no_rule_for_path', rule: null, credential: null, status: 403, upstream_status: null, error: 'policy_denied', bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 0.577486, trace_id: '8f9447e05a2f2d81edaf1fdcdb5b21de', config_version: 'cfg_379180edf2be9003', decided_on: decided(['nope']), detail: { reason: 'no_rule_for_path', rule: null, why: 'no rule of connector echo matches the path' }, ...chain },
  ]
}

const KEYS = ['a', 'hash0', 'ha', 'zeta', 'Hash', 'detail', '', 'é', 'ü', '\u{1F600}', '\uFFFF', '10', '9', '01', '-1', '1.5', 'prev', 'seq', 'h', 'hasi', 'hat', 'time', 'Z', '_', ' ']
const STRINGS = ['', 'x', '"quoted" \\ \u2028 \u2029 \u0000 \u001f \u007f', 'é ü ß 日本', '\u{1F600}', '\uD800', 'a\uDC00b', '</script>', 'tab\there', 'ses_76bc20cf0a7239f0']
const NUMBERS = [0, -0, 1, -7, 1.5, 0.1 + 0.2, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, -1.5e300, 2 ** 53 + 2, 15.265738]

/** A deterministic generator of values of every kind canonical JSON writes, nested, with shapes that repeat. */
function generator(seed: number) {
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  }
  const value = (depth: number): unknown => {
    switch (next(depth > 3 ? 6 : 9)) {
      case 0: return STRINGS[next(STRINGS.length)]
      case 1: return NUMBERS[next(NUMBERS.length)]
      case 2: return next(2) === 0
      case 3: return null
      case 4: return undefined
      case 5: return STRINGS[next(STRINGS.length)]
      case 6: return Array.from({ length: next(4) }, () => { const v = value(depth + 1); return v === undefined ? null : v })
      case 7: return {}
      default: return object(depth + 1)
    }
  }
  const object = (depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    const size = next(8)
    for (let i = 0; i < size; i++) out[KEYS[next(KEYS.length)] as string] = value(depth)
    return out
  }
  return { next, object }
}

describe('canonicalPair', () => {
  it('writes real audit records exactly as canonicalJson does, with and without their hash', () => {
    for (let i = 1; i <= 50; i++) {
      for (const record of realRecords(i)) {
        const pair = canonicalPair(record, 'hash')
        assert.equal(pair.without, canonicalJson(record))
        assert.equal(pair.with('8cf84f44f3b27c6edb7de66e57b58a4aa6c28ec36c787cc83966fd4062ce04de'), canonicalJson({ ...record, hash: '8cf84f44f3b27c6edb7de66e57b58a4aa6c28ec36c787cc83966fd4062ce04de' }))
      }
    }
  })

  it('is canonicalJson of the record without and with the member, for many varied records (unicode, numbers, nesting, index-like keys, empty values)', () => {
    const { next, object } = generator(7)
    // More shapes than the writer keeps (256), so that it also starts again from none.
    for (let round = 0; round < 20_000; round++) {
      const record = object(0)
      delete record.hash
      if (round % 5 === 0) Object.assign(record, realRecords(round)[next(3)])
      if (round % 7 === 0) record.detail = object(1)
      const pair = canonicalPair(record, 'hash')
      assert.equal(pair.without, canonicalJson(record), JSON.stringify(record))
      const hash = round % 3 === 0 ? '' : `h${round}"\\\u2028`
      assert.equal(pair.with(hash), canonicalJson({ ...record, hash }), JSON.stringify(record))
    }
  })

  it('tells apart shapes whose keys joined read the same (no keys and the key \'\', keys holding a NUL)', () => {
    for (const [first, second] of [[{}, { '': {} }], [{ 'a\u0000b': 1 }, { a: 1, b: 2 }], [{ 'a\u0000b': 1, c: 2 }, { a: 1, 'b\u0000c': 2 }]] as Record<string, unknown>[][]) {
      for (const record of [first, second, first] as Record<string, unknown>[]) {
        assert.equal(canonicalPair(record, 'hash').without, canonicalJson(record))
        assert.equal(canonicalPair(record, 'hash').with('h'), canonicalJson({ ...record, hash: 'h' }))
      }
    }
  })

  it('writes the same keys in any insertion order alike (each order its own shape)', () => {
    const a = { b: 1, a: { y: [1, { q: 2, p: 3 }], x: 'é' }, c: null }
    const b = { c: null, a: { x: 'é', y: [1, { p: 3, q: 2 }] }, b: 1 }
    assert.equal(canonicalPair(a, 'hash').without, canonicalPair(b, 'hash').without)
    assert.equal(canonicalPair(a, 'hash').without, '{"a":{"x":"é","y":[1,{"p":3,"q":2}]},"b":1,"c":null}')
  })

  it('leaves a record with an array-index-like key at any depth to canonicalJson', () => {
    for (const record of [{ 10: 'x', 9: 'y', a: 1 }, { a: { 2: 0, 1: 0 } }, { a: [{ b: { 0: true } }] }]) {
      assert.equal(canonicalPair(record, 'hash').without, canonicalJson(record))
      assert.equal(canonicalPair(record, 'hash').with('z'), canonicalJson({ ...record, hash: 'z' }))
    }
  })

  it('refuses what canonicalJson refuses, and a record that has the member already', () => {
    for (const bad of [Number.NaN, Infinity, 1n, () => 1, Symbol('s'), new Date(0), new Map(), [undefined], [1, , 2], { a: { b: [Infinity] } }, Object.create({})]) {
      assert.throws(() => canonicalJson({ a: bad }), TypeError)
      assert.throws(() => canonicalPair({ a: bad }, 'hash'), TypeError)
    }
    assert.throws(() => canonicalPair({ 10: Number.NaN }, 'hash'), TypeError)
    assert.throws(() => canonicalPair({ hash: 'x' }, 'hash'), TypeError)
    assert.throws(() => canonicalPair({ hash: undefined, 1: 'x' }, 'hash'), TypeError)
  })
})
