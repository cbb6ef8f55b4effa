import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AnonymousBudget } from './anonymous-budget.ts'

describe('AnonymousBudget', () => {
  const admitted = (budget: AnonymousBudget, source: string, n: number): number => {
    let count = 0
    for (let i = 0; i < n; i++) if (budget.admit(source, 'gateway')) count++
    return count
  }

  it('gives a source its bucket at once, then refills it continuously up to the bucket size', () => {
    let now = 1_000_000
    const budget = new AnonymousBudget({ perSourcePerMinute: 10, totalPerMinute: 1000 }, () => now)
    assert.equal(admitted(budget, 'a', 25), 10)
    now += 30_000
    assert.equal(admitted(budget, 'a', 25), 5, 'half a minute: half a bucket')
    now += 3_600_000
    assert.equal(admitted(budget, 'a', 25), 10, 'never more than one bucket')
  })

  it('bounds all sources together by the shared bucket', () => {
    const budget = new AnonymousBudget({ perSourcePerMinute: 10, totalPerMinute: 35 }, () => 0)
    let total = 0
    for (let s = 0; s < 100; s++) total += admitted(budget, `10.0.0.${s}`, 10)
    assert.equal(total, 35)
  })

  it('tracks at most 10,000 sources: forgetting the least recently seen only refills its bucket', () => {
    const budget = new AnonymousBudget({ perSourcePerMinute: 1, totalPerMinute: 1_000_000 }, () => 0)
    assert.equal(admitted(budget, 'first', 2), 1)
    for (let s = 0; s < 10_000; s++) budget.admit(`s${s}`, 'gateway')
    assert.equal(admitted(budget, 'first', 2), 1, 'forgotten, so a fresh bucket')
    assert.equal(admitted(budget, 's9999', 1), 0, 'a recent one is remembered')
  })

  it('counts what it held back per listener and source, and idle connections, until the summary is taken', () => {
    const budget = new AnonymousBudget({ perSourcePerMinute: 1, totalPerMinute: 100 }, () => 5_000)
    assert.equal(budget.takeSummary(), undefined)
    admitted(budget, 'a', 4)
    admitted(budget, 'b', 2)
    budget.admit('a', 'forward')
    budget.idleConnection()
    assert.equal(budget.pendingSince, 5_000)
    const summary = budget.takeSummary()
    assert.deepEqual(summary?.suppressed.get('gateway'), { count: 4, sources: [{ address: 'a', count: 3 }, { address: 'b', count: 1 }] })
    assert.deepEqual(summary?.suppressed.get('forward'), { count: 1, sources: [{ address: 'a', count: 1 }] })
    assert.equal(summary?.idleConnections, 1)
    assert.equal(budget.takeSummary(), undefined, 'counting starts afresh')
  })
})
