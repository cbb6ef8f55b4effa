import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import type { AuditRepo } from '../store/store.ts'
import { canonicalJson, canonicalPair } from './canonical-json.ts'
import { auditFacets } from './facets.ts'
import type { AuditFields, AuditRecord } from './record.ts'
import type { AuditSpool } from './spool.ts'

/** `prev` of the first record. */
export const GENESIS_PREV = '0'.repeat(64)

/**
 * hex HMAC-SHA256(key, canonical JSON of the record without `hash`). The chain is keyed (the key
 * is derived from the master key) so that someone who can write the database file but lacks the
 * master key cannot forge a record or recompute the chain after editing or removing one.
 */
export function auditHash(key: Buffer | KeyObject, record: Omit<AuditRecord, 'hash'>): string {
  return createHmac('sha256', key).update(canonicalJson(record)).digest('hex')
}

/**
 * One instance's tamper-evident audit chain: each record carries the instance, its place in the
 * chain (`seq`), the hash of its predecessor (`prev`) and its own keyed hash. Each row's `line` is
 * the canonical JSON of the full record, one line per record. Only this process writes this
 * chain, so its end is kept here and never waited for in the store; after a failed commit it is
 * read from the store again (a commit whose answer was lost may have landed).
 *
 * Group commit: records appended while a commit is in flight (or in the same turn of the event
 * loop) are written in one transaction (one fsync), so durability does not cost one disk flush
 * per request. Every `append` still resolves only once its own record is committed.
 *
 * Pipelining (`pipeline` > 1, for a store that applies appends made without waiting in the order
 * made, each in its own transaction: PostgreSQL's one audit connection): up to that many batches
 * are sent before the first is acknowledged, each built on the end the one before it will leave.
 * The store takes a batch only where its chain's previous row already is, so when one fails,
 * every batch sent after it fails too (its predecessor is missing) and none can land out of
 * order. After a failure no batch is sent until those in flight are answered; the chain's end is
 * then read from the store again, and a failed batch is never spooled behind one that failed
 * (it would leave a gap in the spool). While the spool holds rows, one batch at a time: it is
 * flushed before each.
 */
export class AuditLog {
  readonly #repo: AuditRepo
  readonly #key: KeyObject
  readonly #clock: () => number
  readonly #instance: string
  /** Where the chain ends once every batch sent is committed; undefined until read from the store. */
  #end: { seq: number; hash: string } | undefined
  #queue: Pending[] = []
  #scheduled = false
  /** Batches sent and not yet answered (a spool flush counts as one). */
  #inFlight = 0
  /** A batch failed: send nothing until those in flight are answered, then read the end again. */
  #broken = false
  readonly #pipeline: number
  readonly #spool: AuditSpool | undefined
  readonly #unreachable: (err: unknown) => boolean

  /**
   * `key` = deriveKey(master, 'keyvalet audit v1'); `instance` names the chain (audit/instance.ts).
   * With a `spool`, a batch the store fails to take because it is `unreachable` is spooled (and
   * counts as written) while the spool has room; the spool is flushed before the next batch, so the
   * chain reaches the store in order. `pipeline`: batches in flight at most (default 1).
   */
  constructor(repo: AuditRepo, key: Buffer, clock: () => number, instance: string, spool?: { readonly spool: AuditSpool; readonly unreachable: (err: unknown) => boolean }, opts: { readonly pipeline?: number } = {}) {
    this.#repo = repo
    this.#key = createSecretKey(key) // a KeyObject: Node re-validates raw key buffers on every call
    this.#clock = clock
    this.#instance = instance
    this.#spool = spool?.spool
    this.#unreachable = spool?.unreachable ?? (() => false)
    this.#pipeline = Math.max(1, opts.pipeline ?? 1)
  }

  /** Spooled records waiting for the store. */
  get spooled(): number {
    return this.#spool?.pending ?? 0
  }

  /** Tries to move the spooled records into the store now, unless a commit is under way (which does it first anyway). */
  async flushSpool(): Promise<void> {
    if (this.spooled === 0 || this.#inFlight > 0 || this.#scheduled) return
    this.#inFlight++
    try {
      await this.#spool?.flushInto(this.#repo)
    } catch {
      // Still unreachable: the next commit or the next try goes on.
    } finally {
      this.#settled()
    }
  }

  get instance(): string {
    return this.#instance
  }

  /** Appends one record after the chain's current last one; durable when it resolves. */
  append(fields: AuditFields): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields, resolve, reject })
      this.#schedule()
    })
  }

  /** Whether another batch may be sent now: room in the pipeline, and alone when the end is unknown, the spool holds rows or a batch failed. */
  #mayStart(): boolean {
    if (this.#inFlight === 0) return true
    return this.#inFlight < this.#pipeline && !this.#broken && this.#end !== undefined && this.spooled === 0
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || !this.#mayStart()) return
    this.#scheduled = true
    setImmediate(() => this.#flush())
  }

  #flush(): void {
    this.#scheduled = false
    if (this.#queue.length === 0 || !this.#mayStart()) return
    const batch = this.#queue
    this.#queue = []
    this.#inFlight++
    void this.#commit(batch).finally(() => this.#settled())
  }

  #settled(): void {
    this.#inFlight--
    if (this.#inFlight === 0 && this.#broken) {
      this.#broken = false
      this.#end = undefined
    }
    this.#schedule()
  }

  async #commit(batch: Pending[]): Promise<void> {
    const records: AuditRecord[] = []
    try {
      // Read only with nothing else in flight (#mayStart), so no batch was built on an older end.
      this.#end ??= await this.#chainEnd()
      let prev = this.#end
      const rows = batch.map(({ fields }) => {
        const { record, line } = this.#build(fields, prev)
        records.push(record)
        prev = { seq: record.seq, hash: record.hash }
        return { instance: this.#instance, chainSeq: record.seq, hash: record.hash, line, facets: auditFacets(record) }
      })
      // The next batch is built on this one's end, and sent after it (no await before the append
      // when the spool is empty: the store gets the appends in the order they were built).
      this.#end = prev
      try {
        if (this.spooled > 0) await this.#spool?.flushInto(this.#repo)
        await this.#repo.append(rows)
      } catch (err) {
        if (this.#broken || !this.#unreachable(err) || this.#spool?.add(rows) !== true) throw err
      }
    } catch (err) {
      this.#broken = true
      for (const p of batch) p.reject(err)
      return
    }
    batch.forEach((p, i) => {
      const record = records[i]
      if (record === undefined) p.reject(new Error('audit batch lost a record'))
      else p.resolve(record)
    })
  }

  /** Where the chain ends: its last spooled row (spooled rows come after all it has in the store), else its last row in the store. */
  async #chainEnd(): Promise<{ seq: number; hash: string }> {
    const last = this.#spool?.lastOf(this.#instance) ?? (await this.#repo.chainLast(this.#instance))
    return last === undefined ? { seq: 0, hash: GENESIS_PREV } : { seq: last.chainSeq, hash: last.hash }
  }

  /** The record and its line: canonical JSON is written once, hashed without `hash`, stored with it. */
  #build(fields: AuditFields, last: { seq: number; hash: string }): { record: AuditRecord; line: string } {
    // One copy of the fields: an empty detail is left out (rare, so only then taken apart).
    const kept = fields.detail !== undefined && Object.keys(fields.detail).length === 0 ? withoutDetail(fields) : fields
    const body: Omit<AuditRecord, 'hash'> & { hash?: string } = {
      ...kept,
      // Chain fields last, so that stray properties in `fields` cannot override them.
      instance: this.#instance,
      seq: last.seq + 1,
      time: new Date(this.#clock()).toISOString(),
      prev: last.hash,
    }
    const text = canonicalPair(body as unknown as Record<string, unknown>, 'hash')
    const hash = createHmac('sha256', this.#key).update(text.without).digest('hex')
    body.hash = hash
    return { record: body as AuditRecord, line: text.with(hash) }
  }
}

function withoutDetail(fields: AuditFields): AuditFields {
  const { detail: _empty, ...rest } = fields
  return rest
}

interface Pending {
  readonly fields: AuditFields
  resolve(record: AuditRecord): void
  reject(err: unknown): void
}
