import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { canonicalJson } from '../audit/canonical-json.ts'
import { compileJsonSchema } from '../schema-kit/json-schema.ts'
import { bodyReads } from './body-reads.ts'
import { covers, rebuild, snapshot } from './body-snapshot.ts'

function compiled(schema: Record<string, unknown>) {
  const v = compileJsonSchema(schema, (f, m) => assert.fail(`${f.join('.')}: ${m}`))
  assert.ok(v !== undefined)
  return v
}

const SCHEMAS: Record<string, Record<string, unknown>> = {
  title: { type: 'object', required: ['title'], properties: { title: { type: 'string', maxLength: 10 } } },
  shortTitle: { type: 'object', required: ['title'], properties: { title: { type: 'string', maxLength: 3 } } },
  titleType: { type: 'object', properties: { title: { type: 'string' } } },
  closed: { type: 'object', properties: { title: { type: 'string' } }, additionalProperties: false },
  nested: { type: 'object', properties: { meta: { type: 'object', required: ['owner'], properties: { owner: { enum: ['acme', 'beta'] } } } } },
  labels: { type: 'object', required: ['labels'], properties: { labels: { type: 'array', maxItems: 2 } } },
  ref: { $defs: { t: { type: 'string', minLength: 2 } }, type: 'object', properties: { title: { $ref: '#/$defs/t' } } },
  anyOf: { anyOf: [{ type: 'object', required: ['title'] }, { type: 'array' }] },
  token: { type: 'object', properties: { api_token: { type: 'string', pattern: '^t_' } } },
}
const BODIES: unknown[] = [
  { title: 'bug' }, { title: 'a long title here' }, { title: 7 }, {}, { title: 'x', extra: 1 }, [1, 2], 'text', null,
  { meta: { owner: 'acme' } }, { meta: { owner: 'evil' } }, { meta: 'flat' }, { labels: [1, 2, 3] }, { labels: [] }, { api_token: 't_secret' },
]

describe('replay body facts: a schema\'s reads, recorded, and a rebuilt body', () => {
  it('whenever the recorded parts cover a schema, the rebuilt body is judged by it exactly as the original', () => {
    let covered = 0
    for (const [recordedName, recordedSchema] of Object.entries(SCHEMAS)) {
      for (const body of BODIES) {
        const snap = snapshot(body, bodyReads(recordedSchema))
        const rebuilt = rebuild(JSON.parse(JSON.stringify(snap)))
        for (const [name, schema] of Object.entries(SCHEMAS)) {
          if (!covers(snap, bodyReads(schema))) continue
          covered++
          const v = compiled(schema)
          assert.equal(v.check(rebuilt) === undefined, v.check(body) === undefined, `recorded under ${recordedName}, judged by ${name}: ${JSON.stringify(body)} rebuilt as ${JSON.stringify(rebuilt)}`)
        }
      }
    }
    assert.ok(covered > 150, `${covered} pairs covered`)
  })

  it('covers what the same schema reads, and a tighter value check on a field recorded; not a field it never read', () => {
    const snap = snapshot({ title: 'a long title here', secret: 'x' }, bodyReads(SCHEMAS.title as Record<string, unknown>))
    assert.ok(covers(snap, bodyReads(SCHEMAS.title as Record<string, unknown>)))
    assert.ok(covers(snap, bodyReads(SCHEMAS.shortTitle as Record<string, unknown>)))
    assert.ok(!covers(snap, bodyReads(SCHEMAS.closed as Record<string, unknown>)), 'key names were not read, so not recorded')
    assert.ok(!covers(snap, bodyReads(SCHEMAS.labels as Record<string, unknown>)))
    assert.ok(!JSON.stringify(snap).includes('"secret"'), 'a field no schema reads is not recorded')
  })

  it('withholds a value under a secret-bearing name or over 1 KiB, and over 64 key names: a schema reading them is not covered', () => {
    const schema = SCHEMAS.token as Record<string, unknown>
    const snap = snapshot({ api_token: 't_secret' }, bodyReads(schema))
    assert.ok(!JSON.stringify(snap).includes('t_secret'))
    assert.ok(!covers(snap, bodyReads(schema)))
    const long = snapshot({ title: 'x'.repeat(2000) }, bodyReads(SCHEMAS.title as Record<string, unknown>))
    assert.ok(!covers(long, bodyReads(SCHEMAS.title as Record<string, unknown>)))
    const closed = bodyReads(SCHEMAS.closed as Record<string, unknown>)
    const manyKeys = snapshot(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i])), closed)
    assert.ok(JSON.stringify(manyKeys).length < 200, 'a hundred key names are not recorded')
    assert.ok(!covers(manyKeys, closed))
    assert.ok(covers(snapshot({ title: 'x', k: 1 }, closed), closed))
    // What the record's canonical JSON cannot hold, or its masking would not reach, is withheld.
    const enumSchema = { type: 'object', properties: { v: { enum: [1] } } }
    for (const v of [Infinity, [Infinity], { a: { b: { c: { d: 'deep' } } } }]) {
      const snap = snapshot({ v }, bodyReads(enumSchema))
      assert.equal(snap['/v']?.withheld, true, JSON.stringify(v))
      assert.doesNotThrow(() => canonicalJson(snap))
    }
    assert.deepEqual(snapshot({ v: { a: { b: ['c'] } } }, bodyReads(enumSchema))['/v']?.value, { a: { b: ['c'] } })
  })
})
