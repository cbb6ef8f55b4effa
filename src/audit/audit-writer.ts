import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import type { Logger } from '../log.ts'
import type { StoreLocation } from '../store/location.ts'
import { Admission } from './admission.ts'
import type { HealthChange } from './audit-health.ts'
import { newInstanceId } from './instance.ts'
import type { AuditFields } from './record.ts'
import type { SpoolOptions } from './spool.ts'

export interface WriterOptions {
  /** The store the records go to (the thread opens its own connection to it): Runtime.storeLocation. */
  readonly store: StoreLocation
  /** deriveKey(master, 'keyvalet audit v1'). */
  readonly key: Buffer
  /** Disk space held for the audit log (AuditReserve); config audit.reserve_bytes. */
  readonly reserveBytes: number
  /** Where admission changes are reported (the operator log). */
  readonly log?: Logger
  /** Told, for each batch, the seconds from sending it to the thread to its commit (the metrics). */
  readonly onCommit?: (seconds: number) => void
  /** The version of the configuration in force, for a record that does not name the one it was decided under. */
  readonly configVersion?: () => string
  /** The chain this writer appends to (audit/instance.ts); default: a new instance id. */
  readonly instance?: string
  /** A PostgreSQL store: where records go while the server is unreachable (AuditSpool); none: such a commit fails. */
  readonly spool?: SpoolOptions
}

/** What the thread is started with. */
export interface WorkerOptions extends Omit<WriterOptions, 'log' | 'onCommit' | 'configVersion' | 'instance'> {
  readonly admission: SharedArrayBuffer
  readonly instance: string
}

export type WorkerRequest = { readonly type: 'append'; readonly id: number; readonly batch: AuditFields[] } | { readonly type: 'close' }
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'health'; readonly change: HealthChange }
  /** `seqs[i]`: the seq of the batch's record i, or 0 when it failed, with its reason in `errors[i]`. */
  | { readonly type: 'done'; readonly id: number; readonly seqs: number[]; readonly errors?: Record<number, string> }

interface Pending {
  resolve(seq: number): void
  reject(err: Error): void
}

/**
 * The audit sink the proxy uses: appends go to a worker thread (audit-worker.ts) that writes the
 * hash-chained records. `append` resolves once the record is durably committed, so the pipeline
 * can still finish a response only after its record exists. `admit` says, without a round trip,
 * whether the thread can promise a new request its record (Admission, AuditHealth). If the thread
 * dies, nothing is admitted and every append fails from then on: requests fail closed rather than
 * go unaudited.
 */
export class AuditWriter {
  readonly #worker: Worker
  readonly #admission: Admission
  readonly #waiting = new Map<number, Pending[]>()
  /** When each batch in #waiting was sent (performance.now()), in sending order. */
  readonly #sentAt = new Map<number, number>()
  #queue: { fields: AuditFields; pending: Pending }[] = []
  #nextId = 0
  #failure: Error | undefined
  readonly #configVersion: (() => string) | undefined
  readonly #committed = new Set<() => void>()
  /** The instance whose chain this writer appends to. */
  readonly instance: string

  private constructor(worker: Worker, instance: string, admission: Admission, log: Logger | undefined, onCommit: ((seconds: number) => void) | undefined, configVersion: (() => string) | undefined) {
    this.#worker = worker
    this.instance = instance
    this.#admission = admission
    this.#configVersion = configVersion
    worker.on('message', (reply: WorkerReply) => {
      if (reply.type === 'health') return void reportHealth(log, reply.change)
      if (reply.type !== 'done') return
      const pending = this.#waiting.get(reply.id) ?? []
      this.#waiting.delete(reply.id)
      const sentAt = this.#sentAt.get(reply.id)
      this.#sentAt.delete(reply.id)
      if (sentAt !== undefined) onCommit?.((performance.now() - sentAt) / 1000)
      for (const listener of this.#committed) listener()
      reply.seqs.forEach((seq, i) => {
        const p = pending[i]
        if (p === undefined) return
        if (seq > 0) p.resolve(seq)
        else p.reject(new Error(`audit append failed: ${reply.errors?.[i] ?? 'unknown'}`))
      })
    })
    worker.on('error', (err) => this.#fail(err))
    worker.on('exit', (code) => this.#fail(new Error(`audit writer exited (code ${code})`)))
  }

  static async start(options: WriterOptions): Promise<AuditWriter> {
    const { log, onCommit, configVersion, instance = newInstanceId(), ...rest } = options
    const admission = Admission.create()
    const worker = new Worker(new URL('./audit-worker.ts', import.meta.url), { workerData: { ...rest, instance, admission: admission.buffer } satisfies WorkerOptions })
    await new Promise<void>((resolve, reject) => {
      const onMessage = (reply: WorkerReply): void => {
        if (reply.type === 'health') reportHealth(log, reply.change)
        if (reply.type !== 'ready') return
        worker.off('message', onMessage).off('error', reject)
        resolve()
      }
      worker.on('message', onMessage).once('error', reject)
    })
    return new AuditWriter(worker, instance, admission, log, onCommit, configVersion)
  }

  /** Whether a new request may be taken (its record is promised); a refused one is counted for the outage record. */
  admit(): boolean {
    return this.#failure === undefined && this.#admission.admit()
  }

  /** Whether requests already admitted may still go ahead (checked again before anything is forwarded). */
  get available(): boolean {
    return this.#failure === undefined && this.#admission.open
  }

  /** Records appended and not committed yet: queued here, or in the thread. */
  get pending(): number {
    let count = this.#queue.length
    for (const batch of this.#waiting.values()) count += batch.length
    return count
  }

  /** Milliseconds the oldest batch not yet committed has waited for the thread (0 when none waits). */
  get lagMs(): number {
    for (const sentAt of this.#sentAt.values()) return performance.now() - sentAt
    return 0
  }

  /** Resolves with the record's seq once it is committed. */
  append(fields: AuditFields): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    const version = fields.config_version === undefined ? this.#configVersion?.() : undefined
    const stamped = version === undefined ? fields : { ...fields, config_version: version }
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields: stamped, pending: { resolve, reject } })
      if (this.#queue.length === 1) setImmediate(() => this.#send())
    })
  }

  /**
   * Calls `listener` after each batch the thread committed (the live audit stream reads the new
   * records then, from the store). Returns the function that stops it.
   */
  onCommitted(listener: () => void): () => void {
    this.#committed.add(listener)
    return () => void this.#committed.delete(listener)
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
    this.#sentAt.set(id, performance.now())
    this.#worker.postMessage({ type: 'append', id, batch: batch.map((b) => b.fields) } satisfies WorkerRequest)
  }

  #fail(err: Error): void {
    if (this.#failure !== undefined) return
    this.#failure = err
    this.#admission.close()
    for (const pending of this.#waiting.values()) for (const p of pending) p.reject(err)
    this.#waiting.clear()
    this.#sentAt.clear()
    for (const { pending } of this.#queue) pending.reject(err)
    this.#queue = []
  }
}

function reportHealth(log: Logger | undefined, change: HealthChange): void {
  if (change.available) log?.info('audit available again: taking requests', { ...change })
  else log?.error('audit unavailable: refusing new requests with audit_unavailable until it can write again', { cause: change.cause })
}
