import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CredentialBinding } from '../model/policy.ts'
import type { OutboundRequest } from './kind.ts'
import { MaskPatterns } from '../redact/patterns.ts'
import { maskText } from '../redact/redactor.ts'
import { CREDENTIAL_KINDS, type InjectKind } from './registry.ts'
import { createAwsSigv4 } from './kinds/aws-sigv4.ts'

const RAW_SECRET = 's3cr3t/+ value'
const SECRET = RAW_SECRET
const bindings: Record<InjectKind, CredentialBinding> = {
  bearer: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'bearer', options: {} },
  basic: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'basic', options: { username: 'x-access-token' } },
  header: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'header', options: { name: 'x-api-key', template: 'Key {secret}' } },
  query: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'query', options: { name: 'key' } },
  aws_sigv4: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'aws_sigv4', options: { service: 's3', region: 'eu-west-1', unsignedPayload: false } },
}
/** Kinds whose secret has a shape of its own; the others take SECRET. */
const secrets: Partial<Record<InjectKind, string>> = { aws_sigv4: JSON.stringify({ access_key_id: 'AKIAREAL', secret_access_key: SECRET.replaceAll(' ', '_'), session_token: 'tok/en' }) }
/** Kinds that sign rather than place the secret: the secret itself never goes on the wire. */
const SIGNING: ReadonlySet<InjectKind> = new Set(['aws_sigv4'])
/** A kind that reads the clock, held still so that injecting twice gives the same request. */
const stillClock: Partial<Record<InjectKind, typeof CREDENTIAL_KINDS[InjectKind]>> = { aws_sigv4: createAwsSigv4(() => Date.UTC(2026, 0, 2, 3, 4, 5)) }
const fresh = (): OutboundRequest => ({ method: 'GET', origin: 'https://api.example.com', path: '/v1/x', body: undefined, headers: { accept: 'application/json' }, query: 'a=1&key=sandbox' })

describe('credential kinds (contract)', () => {
  for (const kind of Object.keys(CREDENTIAL_KINDS) as InjectKind[]) {
    const impl = stillClock[kind] ?? CREDENTIAL_KINDS[kind]
    const binding = bindings[kind]
    const SECRET = secrets[kind] ?? RAW_SECRET
    it(`${kind}: is registered under its own name`, () => assert.equal(CREDENTIAL_KINDS[kind].kind, kind))
    it(`${kind}: inject is idempotent and touches only its slot`, () => {
      const once = fresh()
      impl.inject(once, binding, SECRET)
      const twice = fresh()
      impl.inject(twice, binding, SECRET)
      impl.inject(twice, binding, SECRET)
      assert.deepEqual(twice, once)
      assert.equal(once.headers.accept, 'application/json')
    })
    it(`${kind}: what it puts on the wire is masked whole by its echo values`, () => {
      const req = fresh()
      impl.inject(req, binding, SECRET)
      const slot = impl.slot(binding)
      const values = impl.echoValues(binding, SECRET)
      assert.ok(values.includes(SECRET), 'the raw secret is always masked')
      if (SIGNING.has(kind)) return assert.ok(!JSON.stringify(req).includes(JSON.stringify(SECRET).slice(1, -1)), 'a signing kind never puts its secret on the wire')
      const onWire = slot.header !== undefined ? String(req.headers[slot.header]) : req.query
      const masked = maskText(MaskPatterns.of(values), onWire, 'latin1').text
      // What is left is the scheme, base64 padding, the parameter name and the other parameters.
      assert.match(masked.replace(/^(Bearer|Basic|Key) /, '').replace(/^a=1&key=/, ''), /^\*+=*$/, `${onWire} → ${masked}`)
    })
  }

  it('bearer, basic, header and query put the secret where their binding says', () => {
    const put = (kind: InjectKind): OutboundRequest => {
      const req = fresh()
      CREDENTIAL_KINDS[kind].inject(req, bindings[kind], SECRET)
      return req
    }
    assert.equal(put('bearer').headers.authorization, `Bearer ${SECRET}`)
    assert.equal(put('basic').headers.authorization, `Basic ${Buffer.from(`x-access-token:${SECRET}`).toString('base64')}`)
    assert.equal(put('header').headers['x-api-key'], `Key ${SECRET}`)
    assert.deepEqual(new URLSearchParams(put('query').query).getAll('key'), [SECRET])
    assert.equal(new URLSearchParams(put('query').query).get('a'), '1')
  })

  it('aws_sigv4 signs with the secret access key, sends only the session token, and redacts both', () => {
    const req = fresh()
    const kind = stillClock.aws_sigv4 ?? CREDENTIAL_KINDS.aws_sigv4
    kind.inject(req, bindings.aws_sigv4, secrets.aws_sigv4 ?? '')
    assert.match(String(req.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIAREAL\/20260102\/eu-west-1\/s3\/aws4_request, /)
    assert.equal(req.headers['x-amz-security-token'], 'tok/en')
    assert.ok(!JSON.stringify(req).includes('s3cr3t'))
    const values = kind.echoValues(bindings.aws_sigv4, secrets.aws_sigv4 ?? '')
    assert.ok(values.includes('s3cr3t/+_value') && values.includes('tok/en'))
  })

  it('a template with $ patterns renders the secret literally', () => {
    const req = fresh()
    CREDENTIAL_KINDS.header.inject(req, bindings.header, "a$&b$'c")
    assert.equal(req.headers['x-api-key'], "Key a$&b$'c")
  })
})
