import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { compileJsonSchema } from './json-schema.ts'
import type { FieldPath } from './field-path.ts'

function problemsOf(schema: Record<string, unknown>): string[] {
  const found: string[] = []
  const validator = compileJsonSchema(schema, (f: FieldPath, m: string) => void found.push(`${f.join('.')}: ${m}`))
  if (found.length > 0) assert.equal(validator, undefined, 'a refused schema yields no validator')
  return found
}

describe('compileJsonSchema enforces a known subset of draft 2020-12', () => {
  it('refuses a keyword it would not enforce, at any depth, naming where', () => {
    assert.deepEqual(problemsOf({ type: 'object', properties: { title: { type: 'string', maxLenght: 3 } } }), [
      'properties.title.maxLenght: keyword "maxLenght" is not enforced by keyvalet, so the schema would not mean what it says (docs/config.md lists what is)',
    ])
    assert.match(problemsOf({ anyOf: [{ type: 'string' }, { contentMediaType: 'application/json' }] })[0] ?? '', /^anyOf\.1\.contentMediaType: keyword "contentMediaType" is not enforced/)
    assert.match(problemsOf({ dependencies: { a: ['b'] } })[0] ?? '', /^dependencies: keyword "dependencies"/)
  })

  it('refuses a format it does not check, a remote reference and another draft', () => {
    assert.match(problemsOf({ type: 'string', format: 'credit-card' })[0] ?? '', /^format: format "credit-card" is not checked by keyvalet \(checked: .*email.*\)/)
    assert.deepEqual(problemsOf({ $ref: 'https://example.com/schema.json' }), ['$ref: only a reference inside the same schema (#/$defs/name) is resolved'])
    assert.match(problemsOf({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' })[0] ?? '', /^\$schema: keyvalet checks JSON Schema draft 2020-12 only/)
  })

  it('enforces what it accepts: local references, formats, applicators', () => {
    const found: string[] = []
    const v = compileJsonSchema({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      title: 'issue',
      properties: { owner: { $ref: '#/$defs/name' }, email: { type: 'string', format: 'email' } },
      required: ['owner'],
      additionalProperties: false,
      $defs: { name: { type: 'string', pattern: '^[a-z]+$', maxLength: 8 } },
    }, (f, m) => void found.push(`${f.join('.')}: ${m}`))
    assert.deepEqual(found, [])
    assert.ok(v)
    assert.equal(v.check({ owner: 'acme', email: 'a@example.com' }), undefined)
    assert.match(v.check({ owner: 'ACME' }) ?? '', /^\/owner /)
    assert.match(v.check({ owner: 'acme', email: 'not-an-email' }) ?? '', /^\/email /)
    assert.match(v.check({ owner: 'acme', extra: 1 }) ?? '', /^\/ /)
  })
})
