import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { KeyvaletError } from '../errors.ts'
import { MaskPatterns } from '../redact/patterns.ts'
import { auditFields, refusalFields } from './audit-fields.ts'
import type { RequestContext } from './context.ts'
import { traceOf } from './trace.ts'

const SECRET = 'sk-live-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789'
const REFRESH = 'rt_refresh-0123456789abcdefghij'
const PERCENT = [...Buffer.from(SECRET)].map((b) => `%${b.toString(16)}`).join('')
const JWT = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS1hc3NlcnRpb24'

function context(over: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'req_1', mode: 'gateway', req: { method: 'GET', headers: {} } as IncomingMessage, started: process.hrtime.bigint(), trace: traceOf(undefined), bytesIn: 0, bytesOut: 0, redactions: 0,
    credential: { label: 'api-key', value: SECRET, mask: MaskPatterns.of([SECRET]), token: { value: SECRET, label: 'api-key' }, source: { get: () => Promise.reject(new Error('unused')) } },
    ...over,
  }
}

describe('auditFields: nothing it returns holds a value the request touched', () => {
  it('masks the credential, the assertion and the failure\'s secrets in every string, at any depth, in any encoding, even cut short', () => {
    const error = new KeyvaletError('credential_refresh_failed', {
      detail: {
        why: 'token_endpoint_rejected',
        oauth_error: REFRESH,
        nested: { list: [`x ${PERCENT} y`, { deeper: Buffer.from(`Bearer ${SECRET}`).toString('base64') }] },
        cut: SECRET.slice(0, 40),
        assertion_echo: JWT,
      },
      secrets: [REFRESH],
    })
    const ctx = context({ path: `/v1/${SECRET}`, assertion: { kid: 'k1', jti: 'j1', token: JWT } })
    const record = auditFields(ctx, error, 502)
    const text = JSON.stringify(record)
    for (const value of [SECRET, SECRET.slice(0, 12), REFRESH, JWT, PERCENT.slice(0, 12), Buffer.from(SECRET).toString('base64').slice(4, 20)]) {
      assert.ok(!text.includes(value), `${value} in ${text}`)
    }
    assert.equal(record.path, `/v1/${'*'.repeat(SECRET.length)}`)
    assert.equal(record.detail?.oauth_error, '*'.repeat(REFRESH.length))
    assert.equal(record.detail?.cut, '*'.repeat(40))
    assert.equal(record.detail?.why, 'token_endpoint_rejected', 'everything else is kept')
    assert.equal(record.credential, 'api-key')
    assert.equal(record.error, 'credential_refresh_failed')
  })

  it('keeps a record that holds nothing secret as it is', () => {
    const error = new KeyvaletError('policy_denied', { detail: { reason: 'no_rule_for_path', rule: null, why: 'sk-l' } })
    const record = auditFields(context({ path: '/v1/items' }), error, 403)
    assert.equal(record.path, '/v1/items')
    assert.deepEqual(record.detail, { reason: 'no_rule_for_path', rule: null, why: 'sk-l' }, 'a short piece at the end is not taken for a cut-off secret')
  })

  it('a refusal outside the stages masks the secrets its error carries', () => {
    const record = refusalFields('req_2', 'GET', new KeyvaletError('credential_unavailable', { detail: { message: `bad ${REFRESH}` }, secrets: [REFRESH] }))
    assert.equal(record.detail?.message, `bad ${'*'.repeat(REFRESH.length)}`)
  })
})
