/**
 * Preload (`--import`): on SIGUSR2, the main thread writes to $HEAP_REPORT_FILE what its V8 heap
 * holds committed right now (bytes by space) and whether a context created now has a `gc`
 * function (it has while V8's --expose-gc is set), as JSON. It collects nothing itself, so the
 * figures are the process's own. The report is written beside the file and renamed onto it, so a
 * reader that waits for the file to exist never reads it half written.
 */
import { renameSync, writeFileSync } from 'node:fs'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { isMainThread } from 'node:worker_threads'

const file = process.env.HEAP_REPORT_FILE
if (file !== undefined && file !== '' && isMainThread) {
  process.on('SIGUSR2', () => {
    const committed = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]))
    writeFileSync(`${file}.part`, JSON.stringify({ committed, gcInNewContext: runInNewContext('typeof gc') as string }))
    renameSync(`${file}.part`, file)
  })
}
