import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CredentialBinding, InjectKind } from '../policy/types.ts'
import type { OutboundRequest } from './kind.ts'
import { CREDENTIAL_KINDS } from './registry.ts'

const SECRET = 's3cr3t/+ value'
const bindings: Record<InjectKind, CredentialBinding> = {
  bearer: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'bearer', name: undefined, template: undefined, username: undefined },
  basic: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'basic', name: undefined, template: undefined, username: 'x-access-token' },
  header: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'header', name: 'x-api-key', template: 'Key {secret}', username: undefined },
  query: { secret: 'a', source: { type: 'static', options: { secret: 'a' } }, kind: 'query', name: 'key', template: undefined, username: undefined },
}
const fresh = (): OutboundRequest => ({ method: 'GET', origin: 'https://api.example.com', path: '/v1/x', body: undefined, headers: { accept: 'application/json' }, query: 'a=1&key=sandbox' })

describe('credential kinds (contract)', () => {
  for (const kind of Object.keys(CREDENTIAL_KINDS) as InjectKind[]) {
    const impl = CREDENTIAL_KINDS[kind]
    const binding = bindings[kind]
    it(`${kind}: is registered under its own name`, () => assert.equal(impl.kind, kind))
    it(`${kind}: inject is idempotent and touches only its slot`, () => {
      const once = fresh()
      impl.inject(once, binding, SECRET)
      const twice = fresh()
      impl.inject(twice, binding, SECRET)
      impl.inject(twice, binding, SECRET)
      assert.deepEqual(twice, once)
      assert.equal(once.headers.accept, 'application/json')
    })
    it(`${kind}: every form it puts on the wire is one of its echo forms`, () => {
      const req = fresh()
      impl.inject(req, binding, SECRET)
      const slot = impl.slot(binding)
      const onWire = slot.header !== undefined ? String(req.headers[slot.header]) : new URLSearchParams(req.query).get(slot.param ?? '') ?? ''
      const forms = impl.echoForms(binding, SECRET)
      assert.ok(forms.includes(SECRET), 'the raw secret is always redacted')
      assert.ok(forms.some((f) => onWire.includes(f)), `${onWire} is covered by ${forms.join(' | ')}`)
      if (slot.param !== undefined) assert.ok(forms.some((f) => req.query.includes(f)), 'the encoded query form is covered')
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

  it('a template with $ patterns renders the secret literally', () => {
    const req = fresh()
    CREDENTIAL_KINDS.header.inject(req, bindings.header, "a$&b$'c")
    assert.equal(req.headers['x-api-key'], "Key a$&b$'c")
  })
})
