import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attributeBody } from './body.ts'

const same = new Set(['alice'])
const run = (body: string, fields: string[]) => attributeBody(Buffer.from(body), fields.map((f) => f.split('.')), 'alice', same)
const json = (r: ReturnType<typeof run>): unknown => {
  assert.ok('body' in r, JSON.stringify(r))
  return JSON.parse(r.body.toString('utf8'))
}

describe('attributeBody', () => {
  it('sets top-level fields and keeps everything else', () => {
    assert.deepEqual(json(run('{"model":"m","messages":[{"role":"user","content":"hi"}]}', ['user', 'safety_identifier'])),
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], user: 'alice', safety_identifier: 'alice' })
  })

  it('creates the objects on a dot path, or fills one that exists', () => {
    assert.deepEqual(json(run('{"model":"m"}', ['metadata.user_id'])), { model: 'm', metadata: { user_id: 'alice' } })
    assert.deepEqual(json(run('{"metadata":{"tag":"x"}}', ['metadata.user_id'])), { metadata: { tag: 'x', user_id: 'alice' } })
    assert.deepEqual(json(run('{"metadata":null}', ['metadata.user_id'])), { metadata: { user_id: 'alice' } })
  })

  it('accepts a field that already names the same user, in any accepted form', () => {
    assert.deepEqual(json(run('{"user":"alice"}', ['user'])), { user: 'alice' })
    const hashed = attributeBody(Buffer.from('{"user":"alice"}'), [['user']], 'f00d', new Set(['alice', 'f00d']))
    assert.ok('body' in hashed)
    assert.deepEqual(JSON.parse(hashed.body.toString('utf8')), { user: 'f00d' }, 'the raw id is replaced by the pseudonym')
  })

  it('refuses a field naming someone else, or holding anything but the user', () => {
    assert.deepEqual(run('{"user":"bob"}', ['user']), { conflict: 'user' })
    assert.deepEqual(run('{"metadata":{"user_id":"bob"}}', ['metadata.user_id']), { conflict: 'metadata.user_id' })
    assert.deepEqual(run('{"user":["alice"]}', ['user']), { conflict: 'user' })
    assert.deepEqual(run('{"user":7}', ['user']), { conflict: 'user' })
    assert.deepEqual(run('{"user":"alice","safety_identifier":"bob"}', ['user', 'safety_identifier']), { conflict: 'safety_identifier' })
  })

  it('refuses what is not a JSON object, or could be read two ways', () => {
    for (const body of ['[1]', '"x"', 'null', 'not json', '{"user":"a","user":"b"}', '{"metadata":"x"}']) {
      const r = run(body, ['metadata.user_id'])
      assert.ok('invalid' in r, `${body}: ${JSON.stringify(r)}`)
    }
    assert.ok('invalid' in attributeBody(Buffer.from([0x7b, 0xff, 0x7d]), [['user']], 'alice', same), 'invalid UTF-8')
  })

  it('writes numbers back exactly as they were sent', () => {
    const r = run('{"seed":12345678901234567890,"t":0.10000000000000000555,"e":1E3}', ['user'])
    assert.ok('body' in r)
    assert.equal(r.body.toString('utf8'), '{"seed":12345678901234567890,"t":0.10000000000000000555,"e":1E3,"user":"alice"}')
  })

  it('sets an own "__proto__" key of the body as data, never the prototype', () => {
    const r = run('{"__proto__":{"x":1}}', ['user'])
    assert.ok('body' in r)
    assert.deepEqual(JSON.parse(r.body.toString('utf8')), JSON.parse('{"__proto__":{"x":1},"user":"alice"}'))
    assert.equal(({} as Record<string, unknown>).x, undefined)
  })
})
