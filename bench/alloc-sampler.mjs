/**
 * Preload (`--import ./bench/alloc-sampler.mjs`) for bench/alloc-profile.ts. Measurement only.
 * Plain JavaScript: a TypeScript preload would load Node's type stripper into the process measured.
 *
 * The main thread's allocations by the code that made them, garbage included: V8's sampling heap
 * profiler (through an in-process inspector session) keeps the samples of objects that young and
 * full collections freed. The first SIGUSR2 starts sampling, the second writes the profile
 * (a .heapprofile, Chrome DevTools' format) to $ALLOC_PROFILE_FILE. With ALLOC_PROMOTED=1, the
 * samples of objects a young collection freed are left out: what remains is what was promoted
 * to the old generation (and what is still live), the garbage that makes full collections.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { isMainThread } from 'node:worker_threads'

const file = process.env.ALLOC_PROFILE_FILE
if (file !== undefined && file !== '' && isMainThread) {
  const session = new Session()
  session.connect()
  let sampling = false
  process.on('SIGUSR2', () => {
    if (!sampling) {
      sampling = true
      session.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.ALLOC_PROMOTED !== '1' })
      return
    }
    session.post('HeapProfiler.stopSampling', (err, result) => {
      writeFileSync(file, err === null ? JSON.stringify(result.profile) : JSON.stringify({ error: String(err) }))
    })
  })
}
