import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { AuditEngine, type BatchResult, type EngineOptions } from './audit-engine.ts'
import type { HealthChange } from './audit-health.ts'
import type { AuditFields } from './record.ts'
import type { StoreLocation } from '../store/location.ts'

/** What an AuditEngine tells the writer, wherever it runs. */
export interface ChannelEvents {
  done(id: number, result: BatchResult): void
  health(change: HealthChange): void
  /** The engine is gone (its thread died): nothing more will be committed. */
  fail(err: Error): void
}

/** How batches reach the AuditEngine: across to the audit thread, or by a call on this one. */
export interface AuditChannel {
  send(id: number, batch: AuditFields[]): void
  /** After everything sent is answered: stops the engine. */
  close(): Promise<void>
  /** Stops the engine at once, as a crash would. */
  terminate(): Promise<void>
}

/**
 * Whether the store commits cheaply enough to do it on the proxy's thread: SQLite without fsync
 * (a write into the page cache, tens of µs per batch). Then a thread costs more than it saves: a
 * structured clone of every record each way, and waking two threads per batch. An fsync (ms) or
 * a network round trip (PostgreSQL) stays on the audit thread, off the event loop.
 */
export function cheapCommit(store: StoreLocation): boolean {
  return store.kind === 'sqlite' && !store.fsync
}

export type WorkerRequest = { readonly type: 'append'; readonly id: number; readonly batch: AuditFields[] } | { readonly type: 'close' }
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'health'; readonly change: HealthChange }
  | ({ readonly type: 'done'; readonly id: number } & BatchResult)

/** The engine on this thread. */
export async function inlineChannel(options: EngineOptions, events: ChannelEvents): Promise<AuditChannel> {
  // A checkpoint inside a commit here would hold up every request on this thread (checkpointer.ts).
  const engine = await AuditEngine.open({ ...options, backgroundCheckpoints: true }, (change) => events.health(change))
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => (stopped ??= engine.close())
  return {
    send: (id, batch) => void engine.commit(batch).then((result) => events.done(id, result), (err: unknown) => events.fail(err instanceof Error ? err : new Error(String(err)))),
    close: stop,
    terminate: async () => {
      events.fail(new Error('audit writer terminated'))
      await stop()
    },
  }
}

/** The engine on the audit thread (audit-worker.ts); resolves once it is ready. */
export async function threadChannel(options: EngineOptions, events: ChannelEvents): Promise<AuditChannel> {
  const worker = new Worker(new URL('./audit-worker.ts', import.meta.url), { workerData: options })
  await new Promise<void>((resolve, reject) => {
    const onMessage = (reply: WorkerReply): void => {
      if (reply.type === 'health') events.health(reply.change)
      if (reply.type !== 'ready') return
      worker.off('message', onMessage).off('error', reject)
      resolve()
    }
    worker.on('message', onMessage).once('error', reject)
  })
  worker.on('message', (reply: WorkerReply) => {
    if (reply.type === 'health') events.health(reply.change)
    else if (reply.type === 'done') events.done(reply.id, reply)
  })
  worker.on('error', (err) => events.fail(err))
  worker.on('exit', (code) => events.fail(new Error(`audit writer exited (code ${code})`)))
  return {
    send: (id, batch) => worker.postMessage({ type: 'append', id, batch } satisfies WorkerRequest),
    close: async () => {
      worker.postMessage({ type: 'close' } satisfies WorkerRequest)
      await once(worker, 'exit')
    },
    terminate: async () => void (await worker.terminate()),
  }
}
