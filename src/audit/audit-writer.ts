import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import type { AuditFields } from './record.ts'

export interface WriterOptions {
  readonly databasePath: string
  readonly fsync: boolean
  /** deriveKey(master, 'keyvalet audit v1'). */
  readonly key: Buffer
}

export type WorkerRequest = { readonly type: 'append'; readonly id: number; readonly batch: AuditFields[] } | { readonly type: 'close' }
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly id: number; readonly replies: ({ ok: true; seq: number } | { ok: false; error: string })[] }

interface Pending {
  resolve(seq: number): void
  reject(err: Error): void
}

/**
 * The audit sink the proxy uses: appends go to a worker thread (audit-worker.ts) that writes the
 * hash-chained records. `append` resolves once the record is durably committed, so the pipeline
 * can still finish a response only after its record exists. If the thread dies, every append
 * fails from then on: requests fail closed rather than go unaudited.
 */
export class AuditWriter {
  readonly #worker: Worker
  readonly #waiting = new Map<number, Pending[]>()
  #queue: { fields: AuditFields; pending: Pending }[] = []
  #nextId = 0
  #failure: Error | undefined

  private constructor(worker: Worker) {
    this.#worker = worker
    worker.on('message', (reply: WorkerReply) => {
      if (reply.type !== 'done') return
      const pending = this.#waiting.get(reply.id) ?? []
      this.#waiting.delete(reply.id)
      reply.replies.forEach((r, i) => {
        const p = pending[i]
        if (p === undefined) return
        if (r.ok) p.resolve(r.seq)
        else p.reject(new Error(`audit append failed: ${r.error}`))
      })
    })
    worker.on('error', (err) => this.#fail(err))
    worker.on('exit', (code) => this.#fail(new Error(`audit writer exited (code ${code})`)))
  }

  static async start(options: WriterOptions): Promise<AuditWriter> {
    const worker = new Worker(new URL('./audit-worker.ts', import.meta.url), { workerData: options })
    const [first] = (await Promise.race([once(worker, 'message'), once(worker, 'error').then(([err]) => Promise.reject(err))])) as [WorkerReply]
    if (first.type !== 'ready') throw new Error('audit writer did not start')
    return new AuditWriter(worker)
  }

  /** Resolves with the record's seq once it is committed. */
  append(fields: AuditFields): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields, pending: { resolve, reject } })
      if (this.#queue.length === 1) setImmediate(() => this.#send())
    })
  }

  /** Waits for everything appended so far, then stops the thread. */
  async close(): Promise<void> {
    if (this.#queue.length > 0) this.#send()
    const deadline = Date.now() + 10_000
    while (this.#waiting.size > 0 && this.#failure === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    if (this.#failure !== undefined) return
    this.#failure = new Error('audit writer closed')
    this.#worker.postMessage({ type: 'close' } satisfies WorkerRequest)
    await once(this.#worker, 'exit')
  }

  /** Ends the thread at once, as a crash would (tests use it to show that keyvalet then fails closed). */
  async terminate(): Promise<void> {
    await this.#worker.terminate()
  }

  /** One message per event-loop turn: the worker commits the whole batch in one transaction. */
  #send(): void {
    const batch = this.#queue
    this.#queue = []
    if (batch.length === 0) return
    const id = this.#nextId++
    this.#waiting.set(id, batch.map((b) => b.pending))
    this.#worker.postMessage({ type: 'append', id, batch: batch.map((b) => b.fields) } satisfies WorkerRequest)
  }

  #fail(err: Error): void {
    if (this.#failure !== undefined) return
    this.#failure = err
    for (const pending of this.#waiting.values()) for (const p of pending) p.reject(err)
    this.#waiting.clear()
    for (const { pending } of this.#queue) pending.reject(err)
    this.#queue = []
  }
}
