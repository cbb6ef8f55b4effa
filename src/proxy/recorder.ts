import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AuditFields } from '../audit/record.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { AnonymousAudit } from './anonymous-audit.ts'
import type { RequestContext } from './context.ts'
import type { RequestObserver } from './observer.ts'
import type { AuditSink } from './request-audit.ts'

/**
 * How every outcome reaches the audit and the sandbox, in that order. Contract: `admit` before
 * anything else; then one `settle` per outcome, which writes its record before the answer goes.
 * Every closing record passes `append`, which is where the observers (metrics, the operator log
 * line) are told of it.
 */
export class Recorder {
  readonly #audit: AuditSink
  readonly #anonymous: AnonymousAudit
  readonly #log: Logger
  readonly #observers: readonly RequestObserver[]

  constructor(audit: AuditSink, anonymous: AnonymousAudit, log: Logger, observers: readonly RequestObserver[] = []) {
    this.#audit = audit
    this.#anonymous = anonymous
    this.#log = log
    this.#observers = observers
  }

  /**
   * Audit admission, for a request that just arrived: true when the audit can promise it a record
   * now; else it is answered audit_unavailable at once (the sink counts it for its outage record).
   */
  admit(answer: (error: KeyvaletError) => void): boolean {
    if (this.#audit.admit()) return true
    for (const observer of this.#observers) observer.unadmitted()
    answer(new KeyvaletError('audit_unavailable'))
    return false
  }

  /**
   * The one way request records are written: an anonymous one (no session) within its budget.
   * `ctx`, for a request that went through the stages, tells the observers its upstream time.
   */
  append(fields: AuditFields, socket: Duplex | null, ctx?: RequestContext): Promise<number | undefined> {
    if (fields.phase !== 'open') for (const observer of this.#observers) observer.settled(fields, ctx?.upstreamMs)
    // A request's socket is gone (null) once Node detached it, e.g. after an aborted upload.
    return this.#anonymous.append(fields, fields.session === null ? (socket as Socket | null)?.remoteAddress : undefined)
  }

  /**
   * The one audit-and-answer step: `write` the outcome's record, then `answer`. A record that
   * cannot be written is logged for the operator (the sink has then closed admission, so what
   * follows is refused) and the answer is told why; the sandbox is answered either way.
   */
  async settle(requestId: string, write: () => Promise<unknown>, answer: (failure: KeyvaletError | undefined) => void): Promise<void> {
    let failure: KeyvaletError | undefined
    try {
      await write()
    } catch (err) {
      this.#log.error('audit write failed', { request_id: requestId, error: String(err) })
      failure = toKeyvaletError(err)
    }
    answer(failure)
  }
}
