import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { traceOf, traceparent } from './trace.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

describe('W3C trace context', () => {
  it('continues a valid traceparent with a span of its own', () => {
    const t = traceOf(`00-${TRACE}-${PARENT}-01`)
    assert.deepEqual([t.traceId, t.flags, t.continued], [TRACE, '01', true])
    assert.match(t.spanId, /^[0-9a-f]{16}$/)
    assert.notEqual(t.spanId, PARENT)
    assert.equal(traceparent(t), `00-${TRACE}-${t.spanId}-01`)
    // A later version may append fields: the first four are read, and 00 is sent on.
    assert.equal(traceOf(`01-${TRACE}-${PARENT}-00-extra`).traceId, TRACE)
  })

  it('starts a new trace for a missing or invalid one', () => {
    for (const bad of [undefined, '', `00-${TRACE.toUpperCase()}-${PARENT}-01`, `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01-extra`, `00-${TRACE}-${PARENT}`, [`00-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01`]]) {
      const t = traceOf(bad)
      assert.equal(t.continued, false, String(bad))
      assert.notEqual(t.traceId, TRACE)
      assert.match(traceparent(t), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
    }
    const ids = new Set(Array.from({ length: 1000 }, () => traceOf(undefined).traceId))
    assert.equal(ids.size, 1000)
  })
})
