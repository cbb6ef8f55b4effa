import type { AuditFields } from '../audit/record.ts'
import type { RecordSink } from './request-audit.ts'
import type { Logger } from '../log.ts'
import { AnonymousBudget, type AnonymousLimits } from './anonymous-budget.ts'
import { outsideFields } from './audit-fields.ts'

/** How often at most a summary of what the budget held back is written. */
const SUMMARY_INTERVAL_MS = 60_000

/**
 * The audit sink as the listeners use it: a record that names a session is written as it is; one
 * that names none is anonymous and written only within the AnonymousBudget, else counted. What was
 * counted becomes a log line and, per listener that held records back, one chained summary record
 * (reason anonymous_records_suppressed, status 0): a minute after the first event it counts, or
 * when keyvalet closes.
 */
export class AnonymousAudit {
  readonly #sink: RecordSink
  readonly #log: Logger
  readonly #clock: () => number
  readonly #nextId: () => string
  readonly #budget: AnonymousBudget
  #timer: NodeJS.Timeout | undefined

  constructor(opts: { sink: RecordSink; log: Logger; clock: () => number; nextId: () => string; limits: AnonymousLimits }) {
    this.#sink = opts.sink
    this.#log = opts.log
    this.#clock = opts.clock
    this.#nextId = opts.nextId
    this.#budget = new AnonymousBudget(opts.limits, opts.clock)
  }

  /**
   * Writes `fields` (from a client at `source`) and resolves with its seq, or only counts it when
   * it is anonymous and over budget (resolves undefined).
   */
  append(fields: AuditFields, source: string | undefined): Promise<number | undefined> {
    if (fields.session !== null) return this.#sink.append(fields)
    const admitted = this.#budget.admit(source ?? 'unknown', fields.mode)
    this.#summariseWhenDue()
    return admitted ? this.#sink.append(fields) : Promise.resolve(undefined)
  }

  /** A connection closed without a single byte of a request: counted, never chained. */
  idleConnection(): void {
    this.#budget.idleConnection()
    this.#summariseWhenDue()
  }

  /** Writes what was counted since the last summary, if anything. */
  async summarise(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const summary = this.#budget.takeSummary()
    if (summary === undefined) return
    const since = new Date(summary.since).toISOString()
    const held = [...summary.suppressed].map(([mode, s]) => ({ mode, records: s.count, sources: s.sources }))
    this.#log.warn('anonymous traffic counted instead of recorded', { since, idle_connections: summary.idleConnections, suppressed_records: held })
    for (const h of held) {
      const fields = {
        ...outsideFields(this.#nextId(), '', { decision: 'deny', reason: 'anonymous_records_suppressed', status: 0, error: null }),
        mode: h.mode,
        detail: { suppressed: h.records, sources: h.sources, since },
      }
      await this.#sink.append(fields).catch((err: unknown) => this.#log.error('audit write failed', { request_id: fields.request_id, error: String(err) }))
    }
  }

  #summariseWhenDue(): void {
    const since = this.#budget.pendingSince
    if (since === undefined) return
    if (this.#clock() - since >= SUMMARY_INTERVAL_MS) return void this.summarise()
    this.#timer ??= setTimeout(() => void this.summarise(), SUMMARY_INTERVAL_MS).unref()
  }
}
