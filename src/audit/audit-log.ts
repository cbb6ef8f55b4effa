import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import type { AuditRepo, NewAuditRow } from '../store/store.ts'
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
 */
export class AuditLog {
  readonly #repo: AuditRepo
  readonly #key: KeyObject
  readonly #clock: () => number
  readonly #instance: string
  /** The chain's last committed record; undefined until read from the store. */
  #end: { seq: number; hash: string } | undefined
  #queue: Pending[] = []
  #scheduled = false
  #flushing = false
  readonly #spool: AuditSpool | undefined
  readonly #unreachable: (err: unknown) => boolean

  /**
   * `key` = deriveKey(master, 'keyvalet audit v1'); `instance` names the chain (audit/instance.ts).
   * With a `spool`, a batch the store fails to take because it is `unreachable` is spooled (and
   * counts as written) while the spool has room; the spool is flushed before the next batch, so the
   * chain reaches the store in order.
   */
  constructor(repo: AuditRepo, key: Buffer, clock: () => number, instance: string, spool?: { readonly spool: AuditSpool; readonly unreachable: (err: unknown) => boolean }) {
    this.#repo = repo
    this.#key = createSecretKey(key) // a KeyObject: Node re-validates raw key buffers on every call
    this.#clock = clock
    this.#instance = instance
    this.#spool = spool?.spool
    this.#unreachable = spool?.unreachable ?? (() => false)
  }

  /** Spooled records waiting for the store. */
  get spooled(): number {
    return this.#spool?.pending ?? 0
  }

  /** Tries to move the spooled records into the store now, unless a commit is under way (which does it first anyway). */
  async flushSpool(): Promise<void> {
    if (this.spooled === 0 || this.#flushing || this.#scheduled) return
    this.#flushing = true
    try {
      await this.#spool?.flushInto(this.#repo)
    } catch {
      // Still unreachable: the next commit or the next try goes on.
    } finally {
      this.#flushing = false
      this.#schedule()
    }
  }

  get instance(): string {
    return this.#instance
  }

  /** Appends one record after the chain's current last one; durable when it resolves. Records appended in the same turn are committed together. */
  append(fields: AuditFields): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields: [fields], resolve: (records) => resolve(records[0] as AuditRecord), reject })
      this.#schedule()
    })
  }

  /**
   * Appends records in order, in one transaction with whatever else is waiting; durable when it
   * resolves, all of them or none. The batch is gathered already (AuditEngine's, one per turn of
   * the proxy), so when no commit is under way it is committed now, not a turn later.
   */
  appendBatch(batch: readonly AuditFields[]): Promise<AuditRecord[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields: batch, resolve, reject })
      if (this.#scheduled || this.#flushing) return
      this.#scheduled = true
      void this.#flush()
    })
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing || this.#queue.length === 0) return
    this.#scheduled = true
    setImmediate(() => void this.#flush())
  }

  async #flush(): Promise<void> {
    this.#scheduled = false
    this.#flushing = true
    const batch = this.#queue
    this.#queue = []
    try {
      await this.#commit(batch)
    } finally {
      this.#flushing = false
      this.#schedule()
    }
  }

  async #commit(batch: Pending[]): Promise<void> {
    const records: AuditRecord[] = []
    try {
      this.#end ??= await this.#chainEnd()
      let prev = this.#end
      const rows: NewAuditRow[] = []
      for (const { fields } of batch) {
        for (const one of fields) {
          const { record, line } = this.#build(one, prev)
          records.push(record)
          prev = { seq: record.seq, hash: record.hash }
          rows.push({ instance: this.#instance, chainSeq: record.seq, hash: record.hash, line, facets: auditFacets(record) })
        }
      }
      try {
        await this.#spool?.flushInto(this.#repo)
        await this.#repo.append(rows)
      } catch (err) {
        if (!this.#unreachable(err) || this.#spool?.add(rows) !== true) throw err
      }
      this.#end = prev
    } catch (err) {
      this.#end = undefined
      for (const p of batch) p.reject(err)
      return
    }
    let at = 0
    for (const p of batch) {
      const mine = records.slice(at, (at += p.fields.length))
      if (mine.length !== p.fields.length) p.reject(new Error('audit batch lost a record'))
      else p.resolve(mine)
    }
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

/** Records appended together (one by `append`, a batch by `appendBatch`), answered together. */
interface Pending {
  readonly fields: readonly AuditFields[]
  resolve(records: AuditRecord[]): void
  reject(err: unknown): void
}
