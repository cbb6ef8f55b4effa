import type { Logger } from '../log.ts'
import type { StoreLocation } from '../store/location.ts'
import { Admission } from './admission.ts'
import { cheapCommit, inlineChannel, threadChannel, type AuditChannel } from './audit-channel.ts'
import type { BatchResult } from './audit-engine.ts'
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
  /** Whether the engine runs on the audit thread; default: unless the store commits cheaply (cheapCommit). */
  readonly thread?: boolean
}

/** A batch sent to the engine: whom to answer, and when it was sent (performance.now()). */
interface SentBatch {
  readonly id: number
  readonly pending: Pending[]
  readonly sentAt: number
}

interface Pending {
  resolve(seq: number): void
  reject(err: Error): void
}

/**
 * The audit sink the proxy uses: appends go, one batch per turn of the event loop, to an
 * AuditEngine that writes the hash-chained records — on the audit thread (audit-worker.ts), or on
 * this thread when the store commits cheaply (audit-channel.ts). `append` resolves once the record
 * is committed, so the pipeline can still finish a response only after its record exists. `admit`
 * says, without a round trip, whether the engine can promise a new request its record (Admission,
 * AuditHealth). If the engine dies, nothing is admitted and every append fails from then on:
 * requests fail closed rather than go unaudited.
 */
export class AuditWriter {
  #channel: AuditChannel | undefined
  readonly #admission: Admission
  readonly #onCommit: ((seconds: number) => void) | undefined
  /**
   * The batches sent and not answered yet, in sending order (usually one or two). An array, not a
   * Map: a long-lived Map that empties and fills a batch at a time reallocates its table each
   * time, and each table, held by an old object, outlives young collections (bench/alloc-profile.ts).
   */
  readonly #unanswered: SentBatch[] = []
  #queue: { fields: AuditFields; pending: Pending }[] = []
  #nextId = 0
  #failure: Error | undefined
  readonly #configVersion: (() => string) | undefined
  readonly #committed = new Set<() => void>()
  /** The instance whose chain this writer appends to. */
  readonly instance: string
  /** Whether the engine runs on the audit thread (false: on this one). */
  readonly threaded: boolean

  private constructor(instance: string, threaded: boolean, admission: Admission, onCommit: ((seconds: number) => void) | undefined, configVersion: (() => string) | undefined) {
    this.instance = instance
    this.threaded = threaded
    this.#admission = admission
    this.#onCommit = onCommit
    this.#configVersion = configVersion
  }

  static async start(options: WriterOptions): Promise<AuditWriter> {
    const { log, onCommit, configVersion, instance = newInstanceId(), thread, ...rest } = options
    const threaded = thread ?? !cheapCommit(rest.store)
    const admission = Admission.create()
    const writer = new AuditWriter(instance, threaded, admission, onCommit, configVersion)
    const events = {
      done: (id: number, result: BatchResult) => writer.#done(id, result),
      health: (change: HealthChange) => reportHealth(log, change),
      fail: (err: Error) => writer.#fail(err),
    }
    const engine = { ...rest, instance, admission: admission.buffer }
    writer.#channel = threaded ? await threadChannel(engine, events) : await inlineChannel(engine, events)
    return writer
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
    for (const batch of this.#unanswered) count += batch.pending.length
    return count
  }

  /** Milliseconds the oldest batch not yet committed has waited for the thread (0 when none waits). */
  get lagMs(): number {
    const oldest = this.#unanswered[0]
    return oldest === undefined ? 0 : performance.now() - oldest.sentAt
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

  /** Waits for everything appended so far, then stops the engine. */
  async close(): Promise<void> {
    if (this.#queue.length > 0) this.#send()
    const deadline = Date.now() + 10_000
    while (this.#unanswered.length > 0 && this.#failure === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    if (this.#failure !== undefined) return
    this.#failure = new Error('audit writer closed')
    await this.#channel?.close()
  }

  /** Stops the engine at once, as a crash would (tests use it to show that keyvalet then fails closed). */
  async terminate(): Promise<void> {
    await this.#channel?.terminate()
  }

  /** One batch per event-loop turn: the engine commits it in one transaction. */
  #send(): void {
    const batch = this.#queue
    this.#queue = []
    if (batch.length === 0 || this.#channel === undefined) return
    const id = this.#nextId++
    this.#unanswered.push({ id, pending: batch.map((b) => b.pending), sentAt: performance.now() })
    this.#channel.send(id, batch.map((b) => b.fields))
  }

  #done(id: number, result: BatchResult): void {
    const at = this.#unanswered.findIndex((b) => b.id === id)
    const batch = this.#unanswered[at]
    if (at === 0) this.#unanswered.shift()
    else if (at > 0) this.#unanswered.splice(at, 1)
    const pending = batch?.pending ?? []
    if (batch !== undefined) this.#onCommit?.((performance.now() - batch.sentAt) / 1000)
    for (const listener of this.#committed) listener()
    result.seqs.forEach((seq, i) => {
      const p = pending[i]
      if (p === undefined) return
      if (seq > 0) p.resolve(seq)
      else p.reject(new Error(`audit append failed: ${result.errors?.[i] ?? 'unknown'}`))
    })
  }

  #fail(err: Error): void {
    if (this.#failure !== undefined) return
    this.#failure = err
    this.#admission.close()
    for (const batch of this.#unanswered) for (const p of batch.pending) p.reject(err)
    this.#unanswered.length = 0
    for (const { pending } of this.#queue) pending.reject(err)
    this.#queue = []
  }
}

function reportHealth(log: Logger | undefined, change: HealthChange): void {
  if (change.available) log?.info('audit available again: taking requests', { ...change })
  else log?.error('audit unavailable: refusing new requests with audit_unavailable until it can write again', { cause: change.cause })
}
