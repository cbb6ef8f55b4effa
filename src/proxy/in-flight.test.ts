import { strict as assert } from 'node:assert'
import { test } from 'node:test'
import { KeyvaletError } from '../errors.ts'
import { InFlight, type Flight } from './in-flight.ts'

function flight(log: string[], name: string, inFlight?: InFlight): Flight {
  const f: Flight = {
    cut: (reason) => {
      log.push(`${name} cut ${reason.code}`)
      inFlight?.untrack(f)
    },
    sweep: () => void log.push(`${name} swept`),
  }
  return f
}

test('counts what is tracked once each, and forgets what is untracked; a slot given back is reused', () => {
  const inFlight = new InFlight(1000)
  const log: string[] = []
  const [a, b, c] = [flight(log, 'a'), flight(log, 'b'), flight(log, 'c')]
  inFlight.track(a)
  inFlight.track(a)
  inFlight.track(b)
  assert.equal(inFlight.size, 2)
  inFlight.untrack(a)
  inFlight.untrack(a)
  assert.equal(inFlight.size, 1)
  inFlight.track(c)
  inFlight.track(a)
  assert.equal(inFlight.size, 3)
  inFlight.untrack(b)
  inFlight.untrack(c)
  inFlight.untrack(a)
  assert.equal(inFlight.size, 0)
  inFlight.close()
})

test('cut reaches every flight in flight, each of which may untrack itself as it is cut; drained resolves when none is left', async () => {
  const inFlight = new InFlight(1000)
  const log: string[] = []
  const flights = ['a', 'b', 'c'].map((name) => flight(log, name, inFlight))
  for (const f of flights) inFlight.track(f)
  inFlight.untrack(flights[1] as Flight)
  await inFlight.cut(new KeyvaletError('shutting_down'), 1000)
  assert.deepEqual(log, ['a cut shutting_down', 'c cut shutting_down'])
  assert.equal(inFlight.size, 0)
  await inFlight.drained(1000)
  inFlight.close()
})

test('the sweep visits each flight in flight, and only those', async () => {
  const inFlight = new InFlight(40)
  const log: string[] = []
  const [a, b] = [flight(log, 'a'), flight(log, 'b')]
  inFlight.track(a)
  inFlight.track(b)
  inFlight.untrack(a)
  for (let i = 0; i < 100 && !log.includes('b swept'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.ok(log.includes('b swept'))
  assert.ok(!log.includes('a swept'))
  inFlight.close()
})
