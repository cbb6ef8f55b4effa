import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseExposition, promtoolCheck } from '../../test/helpers/metrics.ts'
import { Registry } from './registry.ts'

describe('metrics registry', () => {
  it('writes counters, gauges and histograms in the text format, labels escaped, passing promtool', async () => {
    const r = new Registry()
    r.counter('demo_events_total', 'Events.', ['kind']).labels('a "quoted"\\back\nline').inc(3)
    r.gauge('demo_depth', 'Depth.').labels().set(7)
    const h = r.histogram('demo_duration_seconds', 'Durations.', [0.1, 1], ['mode']).labels('x')
    for (const v of [0.05, 0.1, 0.5, 1, 2]) h.observe(v)
    const text = await r.expose()
    assert.match(text, /^demo_events_total\{kind="a \\"quoted\\"\\\\back\\nline"\} 3$/m)
    const s = parseExposition(text)
    assert.equal(s.get('demo_depth'), 7)
    // A value equal to a bound is in that bucket (le is inclusive); buckets are cumulative.
    assert.equal(s.get('demo_duration_seconds_bucket{mode="x",le="0.1"}'), 2)
    assert.equal(s.get('demo_duration_seconds_bucket{mode="x",le="1"}'), 4)
    assert.equal(s.get('demo_duration_seconds_bucket{mode="x",le="+Inf"}'), 5)
    assert.equal(s.get('demo_duration_seconds_count{mode="x"}'), 5)
    assert.equal(s.get('demo_duration_seconds_sum{mode="x"}'), 3.65)
    const check = promtoolCheck(text)
    if (check !== 'skip') assert.equal(check, undefined)
  })

  it('refuses what Prometheus would not accept, and keeps one series per label set', () => {
    const r = new Registry()
    assert.throws(() => r.counter('demo_events', 'no _total'), /_total/)
    assert.throws(() => r.gauge('demo-bad', 'x'), /invalid metric name/)
    assert.throws(() => r.gauge('demo_ok', 'x', ['le']), /invalid label name/)
    assert.throws(() => r.histogram('demo_h', 'x', [1, 0.5]), /ascend/)
    const family = r.counter('demo_total', 'x', ['a'])
    assert.equal(family.labels('1'), family.labels('1'))
    assert.throws(() => family.labels(), /takes 1 label/)
    assert.throws(() => r.counter('demo_total', 'again'), /twice/)
  })
})
