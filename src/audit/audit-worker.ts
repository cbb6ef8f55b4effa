/**
 * The audit writer thread: owns its own connection to the store and does everything an audit append
 * costs — canonical JSON, the keyed hash, the durable commit (fsync) — off the proxy's event loop,
 * and watches its own ability to write (AuditHealth), opening and closing admission for the proxy.
 * Started by AuditWriter; speaks only the message shapes defined there.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { openStore } from '../store/open.ts'
import { auditPathFor } from '../store/sqlite-store.ts'
import { Admission } from './admission.ts'
import { AuditHealth } from './audit-health.ts'
import { AuditLog } from './audit-log.ts'
import type { AuditFields } from './record.ts'
import { AuditReserve } from './reserve.ts'
import { AuditSpool } from './spool.ts'
import { isServerUnreachable } from '../store/postgres/unreachable.ts'
import type { WorkerReply, WorkerRequest, WorkerOptions } from './audit-writer.ts'

const port = parentPort
if (port === null) throw new Error('audit-worker.ts must run as a worker thread')
const options = workerData as WorkerOptions
const store = await openStore(options.store)
const spool = options.spool === undefined ? undefined : { spool: AuditSpool.open(options.spool), unreachable: isServerUnreachable }
const log = new AuditLog(store.audit, Buffer.from(options.key), Date.now, options.instance, spool)
// Spooled records (this process's, or left by one that stopped) go into the store as soon as it answers.
const spoolTimer = setInterval(() => void log.flushSpool(), 500)
void log.flushSpool()
const health = new AuditHealth({
  admission: new Admission(options.admission),
  // Disk space is held beside a SQLite audit file; a PostgreSQL server's disk is its operator's to watch.
  reserve: options.store.kind !== 'sqlite' || options.store.path === ':memory:' ? undefined : new AuditReserve(auditPathFor(options.store.path), options.reserveBytes),
  append: (fields) => log.append(fields),
  report: (change) => port.postMessage({ type: 'health', change } satisfies WorkerReply),
})
const timer = setInterval(() => void health.check(), 250)

/** Every record of a batch is appended in the same turn, so AuditLog commits them together. */
function commit(batch: readonly AuditFields[]): Promise<PromiseSettledResult<{ seq: number }>[]> {
  return Promise.allSettled(batch.map((fields) => log.append(fields)))
}

/**
 * Commits a batch; if that fails, admission closes, the reserve is released and the batch is
 * committed once more into the space it gave back: these records are owed to requests already
 * admitted.
 */
async function commitOwed(batch: readonly AuditFields[]): Promise<PromiseSettledResult<{ seq: number }>[]> {
  const results = await commit(batch)
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
  if (failed.length === 0) return results
  health.commitFailed()
  const again = await commit(failed.map((i) => batch[i] as AuditFields))
  failed.forEach((i, k) => { results[i] = again[k] as PromiseSettledResult<{ seq: number }> })
  const lost = again.filter((r) => r.status === 'rejected').length
  if (lost > 0) health.lost(lost)
  return results
}

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'close') {
    clearInterval(timer)
    clearInterval(spoolTimer)
    void health.settled().then(() => store.close()).then(() => port.close())
    return
  }
  void commitOwed(message.batch).then((results) => {
    const seqs = results.map((r) => (r.status === 'fulfilled' ? r.value.seq : 0))
    const errors: Record<number, string> = {}
    results.forEach((r, i) => { if (r.status === 'rejected') errors[i] = String(r.reason) })
    port.postMessage({ type: 'done', id: message.id, seqs, ...(seqs.includes(0) ? { errors } : {}) } satisfies WorkerReply)
    health.checkSoon()
  })
})
void health.check().then(() => port.postMessage({ type: 'ready' } satisfies WorkerReply))
