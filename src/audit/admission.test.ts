import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Admission } from './admission.ts'

describe('Admission', () => {
  it('counts every refusal of an outage exactly once, and admits while open', () => {
    const proxy = Admission.create()
    const audit = new Admission(proxy.buffer) // the same word, as the audit thread sees it
    assert.equal(proxy.admit(), false, 'closed until the audit thread opens it')
    assert.equal(audit.reopen(), 1)
    assert.equal(proxy.open, true)
    assert.equal(proxy.admit(), true)
    assert.equal(audit.close(), true)
    assert.equal(audit.close(), false, 'already closed')
    for (let i = 0; i < 5; i++) assert.equal(proxy.admit(), false)
    assert.equal(proxy.open, false)
    assert.equal(audit.reopen(), 5)
    assert.equal(audit.reopen(), 0, 'nothing refused since')
  })
})
