import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../config/load.ts'
import { OperatorError } from '../errors.ts'

const withConnector = (extra: string, credential = ''): string =>
  `version: 1\nconnectors:\n  crm:\n    upstream: https://crm.internal.example\n${credential}${extra}`

describe('connector assertion config', () => {
  it('fills the defaults: header, ttl, issuer, and the connector name as audience', () => {
    const c = parseConfig(withConnector('    assertion: {}\n'), 'k.yaml').policy.connectors.get('crm')
    assert.deepEqual(c?.assertion, { header: 'x-keyvalet-assertion', ttlSeconds: 60, issuer: 'keyvalet', audience: 'crm' })
  })

  it('takes every field, the header in lower case', () => {
    const c = parseConfig(withConnector('    assertion: { header: X-Assert, ttl_s: 30, audience: https://crm.example, issuer: https://keyvalet.example }\n'), 'k.yaml').policy.connectors.get('crm')
    assert.deepEqual(c?.assertion, { header: 'x-assert', ttlSeconds: 30, issuer: 'https://keyvalet.example', audience: 'https://crm.example' })
  })

  it('refuses a header keyvalet sets for something else, located', () => {
    const cases: [string, string][] = [
      [withConnector('    assertion: { header: Host }\n'), 'k.yaml:5: connectors.crm.assertion.header: host cannot carry the assertion'],
      [withConnector('    assertion: { header: authorization }\n', '    credential: { secret: s, inject: bearer }\n'), 'k.yaml:6: connectors.crm.assertion.header: authorization cannot carry the assertion'],
      [withConnector('    assertion: { header: x-api-key }\n', '    credential: { secret: s, inject: header, header: X-Api-Key }\n'), 'k.yaml:6: connectors.crm.assertion.header: x-api-key cannot carry the assertion'],
      [withConnector('    assertion: { ttl_s: 0 }\n'), 'k.yaml:5: connectors.crm.assertion.ttl_s: must be >= 1'],
    ]
    for (const [text, expected] of cases) {
      assert.throws(() => parseConfig(text, 'k.yaml'), (err: unknown) => err instanceof OperatorError && err.message.includes(expected), expected)
    }
  })
})
