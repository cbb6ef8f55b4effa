// The checkpoint thread of checkpointer.ts. Plain JavaScript on purpose: a worker that loads a
// TypeScript file loads Node's type stripper into its own isolate too, which doubles what the
// thread costs in memory (measured: ~35 MiB resident against ~18 MiB).
//
// Every `intervalMs`, a PASSIVE checkpoint of each file it was given, through its own connection.
// PASSIVE never waits for the write lock nor for readers: it copies what it can and leaves the rest
// for the next turn, so the writers on the proxy's thread are never held up by it.
// Receives { type: 'add' | 'remove', path } and { type: 'stop' }; sends { type: 'failed', path, message },
// and { type: 'removed', path } / { type: 'stopped' } once it closed the file(s), for a release waiting on it.
import { DatabaseSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'

const port = parentPort
if (port === null) throw new Error('checkpoint-worker.mjs must run as a worker thread')
const SQLITE_BUSY = 5
/** @type {Map<string, { db: DatabaseSync, statement: import('node:sqlite').StatementSync, failing: boolean }>} */
const files = new Map()

const timer = setInterval(() => {
  for (const [path, file] of files) {
    try {
      file.statement.get()
      file.failing = false
    } catch (err) {
      // SQLITE_BUSY (another process's checkpoint is running) is the next turn's to retry; anything
      // else is reported once per run of failures.
      if (typeof err?.errcode === 'number' && (err.errcode & 0xff) === SQLITE_BUSY) continue
      if (!file.failing) port.postMessage({ type: 'failed', path, message: String(err?.message ?? err) })
      file.failing = true
    }
  }
}, workerData.intervalMs)

port.on('message', (message) => {
  try {
    if (message.type === 'add' && !files.has(message.path)) {
      const db = new DatabaseSync(message.path)
      db.exec('PRAGMA busy_timeout = 0')
      files.set(message.path, { db, statement: db.prepare('PRAGMA wal_checkpoint(PASSIVE)'), failing: false })
    } else if (message.type === 'remove') {
      files.get(message.path)?.db.close()
      files.delete(message.path)
      port.postMessage({ type: 'removed', path: message.path })
    } else if (message.type === 'stop') {
      clearInterval(timer)
      for (const file of files.values()) file.db.close()
      files.clear()
      port.postMessage({ type: 'stopped' })
      port.close()
    }
  } catch (err) {
    port.postMessage({ type: 'failed', path: message.path ?? '', message: String(err?.message ?? err) })
  }
})
