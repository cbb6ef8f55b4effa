/**
 * The audit writer thread: owns its own SQLite connection and does everything an audit append
 * costs — canonical JSON, the keyed hash, the durable commit (fsync) — off the proxy's event loop.
 * Started by AuditWriter; speaks only the message shapes defined there.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { SqliteStore } from '../store/sqlite-store.ts'
import { AuditLog } from './audit-log.ts'
import type { AuditFields } from './record.ts'
import type { WorkerReply, WorkerRequest, WriterOptions } from './audit-writer.ts'

const port = parentPort
if (port === null) throw new Error('audit-worker.ts must run as a worker thread')
const options = workerData as WriterOptions
const store = SqliteStore.open(options.databasePath, { fsync: options.fsync })
const log = new AuditLog(store.audit, Buffer.from(options.key), Date.now)

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'close') {
    void store.close().then(() => port.close())
    return
  }
  // Every record of a batch is appended in the same turn, so AuditLog commits them together.
  void Promise.allSettled(message.batch.map((fields: AuditFields) => log.append(fields))).then((results) => {
    const replies = results.map((r) => (r.status === 'fulfilled' ? { ok: true as const, seq: r.value.seq } : { ok: false as const, error: String(r.reason) }))
    port.postMessage({ type: 'done', id: message.id, replies } satisfies WorkerReply)
  })
})
port.postMessage({ type: 'ready' } satisfies WorkerReply)
