/**
 * Run with --expose-gc: prints the bytes the old generation grew by when 2,000 objects, each with
 * ~2 KiB of its own, are made and dropped and two young collections then run, for each way of
 * giving an object a closure over itself (see test/pretenured-closures.test.ts).
 */
import { getHeapSpaceStatistics } from 'node:v8'

interface Holder { payload: object[]; f?: () => number }

const ways: Record<string, (h: Holder) => void> = {
  // A function literal assigned to a property: V8 allocates the closure in the old generation.
  literalToProperty: (h) => { h.f = () => h.payload.length },
  // The same closure, made first and then assigned.
  localThenProperty: (h) => {
    const f = (): number => h.payload.length
    h.f = f
  },
}

const gc = (globalThis as { gc?: (options: { type: 'minor' | 'major' }) => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')
const oldSpaceUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0

const grown: Record<string, number> = {}
for (const [name, attach] of Object.entries(ways)) {
  gc({ type: 'major' })
  const before = oldSpaceUsed()
  let holders: Holder[] = []
  for (let i = 0; i < 2000; i++) {
    const h: Holder = { payload: Array.from({ length: 64 }, (_, j) => ({ j })) }
    attach(h)
    holders.push(h)
  }
  holders = []
  gc({ type: 'minor' })
  gc({ type: 'minor' })
  grown[name] = oldSpaceUsed() - before
}
process.stdout.write(`${JSON.stringify(grown)}\n`)
