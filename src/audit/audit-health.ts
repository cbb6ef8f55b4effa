import { randomBytes } from 'node:crypto'
import type { Admission } from './admission.ts'
import type { AuditFields } from './record.ts'
import type { AuditReserve } from './reserve.ts'

/** What the audit thread tells the proxy's thread (for the operator log) when admission changes. */
export type HealthChange =
  | { readonly available: false; readonly cause: OutageCause }
  | { readonly available: true; readonly cause: OutageCause; readonly since: string; readonly refused: number; readonly lost: number }

/** disk_space_low: the reserve is not whole or too little is free besides it; commit_failed: a commit failed. */
export type OutageCause = 'starting' | 'disk_space_low' | 'commit_failed'

interface Outage {
  readonly since: number
  cause: OutageCause
  refused: number
  lost: number
}

const MIN_RETRY_MS = 250
const MAX_RETRY_MS = 8000
const CHECK_EVERY_MS = 100

/**
 * The audit thread's watch over its own ability to write (see Admission and AuditReserve).
 *
 * Admission is open only while the reserve is roomy. When it stops being roomy, or a commit
 * fails, admission closes: the proxy takes nothing new (503 audit_unavailable). A failed commit
 * also releases the reserve, and the caller retries the commit into that space: these are the
 * records of requests admitted before, which are owed. While closed, every check tries to make
 * the reserve whole again; once it is, admission reopens and the first record is the outage
 * record — when, why, how many requests were refused and how many records were lost. If that
 * record cannot be committed either, admission closes again, and the next tries back off (up to
 * MAX_RETRY_MS), since the fault is then more than a lack of space.
 */
export class AuditHealth {
  readonly #admission: Admission
  readonly #reserve: AuditReserve | undefined
  readonly #append: (fields: AuditFields) => Promise<unknown>
  readonly #report: (change: HealthChange) => void
  readonly #clock: () => number
  /** Closed from the start: the first check opens it. */
  #outage: Outage | undefined
  #checking: Promise<void> | undefined
  #checkedAt = 0
  #retryAt = 0
  #retryMs = MIN_RETRY_MS

  constructor(opts: { admission: Admission; reserve: AuditReserve | undefined; append: (fields: AuditFields) => Promise<unknown>; report: (change: HealthChange) => void; clock?: () => number }) {
    this.#admission = opts.admission
    this.#reserve = opts.reserve
    this.#append = opts.append
    this.#report = opts.report
    this.#clock = opts.clock ?? Date.now
    this.#outage = { since: this.#clock(), cause: 'starting', refused: 0, lost: 0 }
  }

  /** Checks now (on a timer, and first of all at start); a check already running is not doubled. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => { this.#checking = undefined })
    return this.#checking
  }

  /** Resolves when no check is running (so that an outage record being written is not cut off by a close). */
  async settled(): Promise<void> {
    await this.#checking
  }

  async #check(): Promise<void> {
    this.#checkedAt = this.#clock()
    const outage = this.#outage
    if (outage === undefined) {
      if (this.#reserve !== undefined && !this.#reserve.roomy()) this.#close('disk_space_low')
      return
    }
    if (this.#clock() < this.#retryAt) return
    if (this.#reserve !== undefined && !this.#reserve.restore()) {
      if (outage.cause === 'starting') {
        outage.cause = 'disk_space_low'
        this.#report({ available: false, cause: outage.cause })
      }
      return // no room yet: cheap to ask again at the next check
    }
    await this.#reopen(outage)
  }

  /** After a commit: checks again if the last check is older than CHECK_EVERY_MS. */
  checkSoon(): void {
    if (this.#clock() - this.#checkedAt >= CHECK_EVERY_MS) void this.check()
  }

  /** A commit failed: take nothing new, and give the reserve's space to the records still owed. */
  commitFailed(): void {
    this.#close('commit_failed')
    this.#reserve?.release()
  }

  /** Records that could not be committed even into the reserve's space. */
  lost(count: number): void {
    if (this.#outage === undefined) this.#close('commit_failed')
    if (this.#outage !== undefined) this.#outage.lost += count
  }

  async #reopen(outage: Outage): Promise<void> {
    outage.refused += this.#admission.reopen()
    // A normal start (nothing refused, nothing lost) is no outage: nothing to record or report.
    const recorded = outage.cause !== 'starting' || outage.refused > 0 || outage.lost > 0
    if (recorded) {
      try {
        await this.#append(outageFields(outage, this.#clock()))
      } catch {
        this.#admission.close()
        this.#reserve?.release()
        return this.#later()
      }
    }
    this.#outage = undefined
    this.#retryMs = MIN_RETRY_MS
    if (recorded) this.#report({ available: true, cause: outage.cause, since: new Date(outage.since).toISOString(), refused: outage.refused, lost: outage.lost })
  }

  #close(cause: OutageCause): void {
    this.#admission.close()
    if (this.#outage !== undefined) return
    this.#outage = { since: this.#clock(), cause, refused: 0, lost: 0 }
    this.#retryAt = 0
    this.#report({ available: false, cause })
  }

  #later(): void {
    this.#retryAt = this.#clock() + this.#retryMs
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2)
  }
}

/** The record of an outage: written first when the audit can write again. Never about one request. */
function outageFields(outage: Outage, until: number): AuditFields {
  return {
    request_id: `outage_${randomBytes(6).toString('hex')}`, mode: 'keyvalet', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
    method: '', path: null, query_keys: [], decision: 'error', reason: 'audit_unavailable', rule: null, credential: null,
    status: 503, upstream_status: null, error: 'audit_unavailable', bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: until - outage.since,
    detail: { cause: outage.cause, since: new Date(outage.since).toISOString(), until: new Date(until).toISOString(), refused: outage.refused, lost: outage.lost },
  }
}
