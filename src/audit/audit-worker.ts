/**
 * The audit thread: an AuditEngine off the proxy's event loop, for stores whose commit is slow
 * (fsync, a network round trip). Started by threadChannel (audit-channel.ts); speaks only the message shapes defined there.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { AuditEngine } from './audit-engine.ts'
import type { EngineOptions } from './audit-engine.ts'
import type { WorkerReply, WorkerRequest } from './audit-channel.ts'

const port = parentPort
if (port === null) throw new Error('audit-worker.ts must run as a worker thread')
const engine = await AuditEngine.open(workerData as EngineOptions, (change) => port.postMessage({ type: 'health', change } satisfies WorkerReply))

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'close') return void engine.close().then(() => port.close())
  void engine.commit(message.batch).then((result) => port.postMessage({ type: 'done', id: message.id, ...result } satisfies WorkerReply))
})
port.postMessage({ type: 'ready' } satisfies WorkerReply)
