import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../config/load.ts'
import { OperatorError } from '../errors.ts'

const withAttribution = (block: string): string =>
  `version: 1\nconnectors:\n  openai:\n    upstream: https://api.openai.example/v1\n    assertion: {}\n    attribution: ${block}\n`

const attribution = (block: string) => parseConfig(withAttribution(block), 'k.yaml').policy.connectors.get('openai')?.attribution

describe('connector attribution config', () => {
  it('takes one dot path, a list, a header, and the value form (default user)', () => {
    assert.deepEqual(attribution('{ body_field: metadata.user_id }'), { bodyFields: [['metadata', 'user_id']], header: undefined, value: 'user' })
    assert.deepEqual(attribution('{ body_field: [user, safety_identifier], header: X-User-Id, value: hashed }'), { bodyFields: [['user'], ['safety_identifier']], header: 'x-user-id', value: 'hashed' })
  })

  it('refuses what cannot be applied, located', () => {
    const cases: [string, string][] = [
      ['{ value: hashed }', 'k.yaml:6: connectors.openai.attribution: needs body_field, header or both'],
      ['{ body_field: [metadata, metadata.user_id] }', 'k.yaml:6: connectors.openai.attribution.body_field[1]: metadata.user_id lies inside metadata'],
      ['{ body_field: a.__proto__.b }', 'k.yaml:6: connectors.openai.attribution.body_field: a.__proto__.b names a key that is not allowed'],
      ['{ body_field: "a..b" }', 'connectors.openai.attribution.body_field'],
      ['{ header: x-keyvalet-assertion }', 'k.yaml:6: connectors.openai.attribution.header: x-keyvalet-assertion cannot carry the user'],
      ['{ header: Transfer-Encoding }', 'k.yaml:6: connectors.openai.attribution.header: transfer-encoding cannot carry the user'],
    ]
    for (const [block, expected] of cases) {
      assert.throws(() => attribution(block), (err: unknown) => err instanceof OperatorError && err.message.includes(expected), `${block}: ${expected}`)
    }
  })
})
