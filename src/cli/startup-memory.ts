import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

interface GcOptions {
  readonly type: 'major'
  readonly execution: 'sync'
  /** 'last-resort': V8's collection when memory runs short, several full passes that reduce memory. */
  readonly flavor: 'last-resort'
}

/**
 * Gives back the memory start-up used and a serving instance does not hold. Loading modules and
 * compiling the configuration's schemas grow V8's young generation (~20 MiB committed with the
 * example configuration, empty once started); V8 shrinks it only in a collection asked to reduce
 * memory, which an idle process never has. One such collection, once the listeners are up and
 * before anything is in flight: measured ~24 MiB less resident memory idle (bench/idle-memory.ts),
 * for ~50–130 ms once at start. Under load the young generation grows again as before.
 *
 * V8 offers that collection to scripts only as the `gc` function of --expose-gc, which exists in a
 * context created while the flag is set: the flag is set for one fresh context and unset again, so
 * no other context (the main one, a worker thread's) has a `gc` (test/e2e/startup-memory.test.ts).
 */
export function releaseStartupMemory(): void {
  let gc: (options: GcOptions) => void
  setFlagsFromString('--expose-gc')
  try {
    gc = runInNewContext('gc') as typeof gc
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}
