import type { AuditFields } from '../audit/record.ts'
import { KeyvaletError } from '../errors.ts'
import { auditFields } from './audit-fields.ts'
import type { RequestContext } from './context.ts'

/** Where audit records go: one closing record per request, committed before the response completes. */
export interface AuditSink {
  /** Resolves with the record's seq once it is committed. */
  append(fields: AuditFields): Promise<number>
  /**
   * Whether a new request may be taken: the audit can promise it its record. A request refused
   * here is answered audit_unavailable without a record of its own; the sink counts it for the
   * record it writes when it can write again.
   */
  admit(): boolean
  /** Whether a request already admitted may still be forwarded (checked again just before). */
  readonly available: boolean
}

/** Where one request's records go; resolves with the record's seq, or undefined when it was only counted (anonymous-audit.ts). */
export interface RecordSink {
  append(fields: AuditFields): Promise<number | undefined>
}

/**
 * The audit records of one request. Contract: exactly one closing record, written by `close`
 * (later calls do nothing) — the request recorded whole, or, if `open` was called first, a
 * `phase: 'close'` record naming the open record's seq in `opened`, with the outcome. `open`
 * writes at most one `phase: 'open'` record, for a stream or a long request still in flight, so
 * that a crash of keyvalet leaves a record of it rather than none.
 */
export class RequestAudit {
  readonly #sink: RecordSink
  readonly #ctx: RequestContext
  #opening: Promise<number | undefined> | undefined
  #closed = false

  constructor(sink: RecordSink, ctx: RequestContext) {
    this.#sink = sink
    this.#ctx = ctx
  }

  /** Whether the open record was asked for (it may still be committing). */
  get opening(): boolean {
    return this.#opening !== undefined
  }

  /** Whether the closing record was asked for (it may still be committing). */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Writes the open record (once); resolves when it is committed. `status` is what the sandbox
   * has been answered so far (0: nothing yet). Fails with audit_unavailable if it cannot be written.
   */
  async open(status: number): Promise<void> {
    this.#opening ??= this.#sink.append({ ...auditFields(this.#ctx, undefined, status), phase: 'open' })
    try {
      await this.#opening
    } catch (err) {
      throw new KeyvaletError('audit_unavailable', { detail: { why: 'open_record_failed' }, cause: err })
    }
  }

  /** Writes the closing record (once); resolves when it is committed. */
  async close(error: KeyvaletError | undefined, status: number): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const fields = auditFields(this.#ctx, error, status)
    // An open record that failed leaves nothing to close: the request is then recorded whole.
    const opened = this.#opening === undefined ? undefined : await this.#opening.catch(() => undefined)
    await this.#sink.append(opened === undefined ? fields : { ...fields, phase: 'close', opened })
  }
}
