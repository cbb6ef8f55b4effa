import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import type { AuditRepo, AuditRow } from '../store/store.ts'
import { canonicalJson, canonicalPair } from './canonical-json.ts'
import { auditFacets } from './facets.ts'
import type { AuditFields, AuditRecord } from './record.ts'

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
 * The tamper-evident audit log: each record carries the hash of its predecessor (`prev`) and its
 * own keyed hash. Each row's `line` is the canonical JSON of the full record, one line per record.
 *
 * Group commit: records appended in the same turn of the event loop are written in one
 * transaction (one fsync), so durability does not cost one disk flush per request. Every
 * `append` still resolves only once its own record is committed.
 */
export class AuditLog {
  readonly #repo: AuditRepo
  readonly #key: KeyObject
  readonly #clock: () => number
  #queue: Pending[] = []
  #scheduled = false

  /** `key` = deriveKey(master, 'keyvalet audit v1'). */
  constructor(repo: AuditRepo, key: Buffer, clock: () => number) {
    this.#repo = repo
    this.#key = createSecretKey(key) // a KeyObject: Node re-validates raw key buffers on every call
    this.#clock = clock
  }

  /** Appends one record after the current last one; durable when it resolves. */
  append(fields: AuditFields): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  async #flush(): Promise<void> {
    const batch = this.#queue
    this.#queue = []
    this.#scheduled = false
    const records: AuditRecord[] = []
    try {
      await this.#repo.appendMany((last) => {
        records.length = 0
        let prev = last
        return batch.map(({ fields }) => {
          const { record, line } = this.#build(fields, prev)
          records.push(record)
          prev = { seq: record.seq, hash: record.hash, line: '' }
          return { seq: record.seq, hash: record.hash, line, facets: auditFacets(record) }
        })
      })
    } catch (err) {
      for (const p of batch) p.reject(err)
      return
    }
    batch.forEach((p, i) => {
      const record = records[i]
      if (record === undefined) p.reject(new Error('audit batch lost a record'))
      else p.resolve(record)
    })
  }

  /** The record and its line: canonical JSON is written once, hashed without `hash`, stored with it. */
  #build(fields: AuditFields, last: AuditRow | undefined): { record: AuditRecord; line: string } {
    // One copy of the fields: an empty detail is left out (rare, so only then taken apart).
    const kept = fields.detail !== undefined && Object.keys(fields.detail).length === 0 ? withoutDetail(fields) : fields
    const body: Omit<AuditRecord, 'hash'> & { hash?: string } = {
      ...kept,
      // Chain fields last, so that stray properties in `fields` cannot override them.
      seq: (last?.seq ?? 0) + 1,
      time: new Date(this.#clock()).toISOString(),
      prev: last?.hash ?? GENESIS_PREV,
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
