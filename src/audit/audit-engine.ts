import { openStore } from '../store/open.ts'
import { auditPathFor } from '../store/sqlite-store.ts'
import { isServerUnreachable } from '../store/postgres/unreachable.ts'
import type { Store } from '../store/store.ts'
import { Admission } from './admission.ts'
import { AuditHealth, type HealthChange } from './audit-health.ts'
import { AuditLog } from './audit-log.ts'
import type { AuditFields } from './record.ts'
import { AuditReserve } from './reserve.ts'
import { AuditSpool, type SpoolOptions } from './spool.ts'
import type { StoreLocation } from '../store/location.ts'

export interface EngineOptions {
  readonly store: StoreLocation
  /** deriveKey(master, 'keyvalet audit v1'). */
  readonly key: Uint8Array
  readonly reserveBytes: number
  readonly spool?: SpoolOptions
  /** The admission word the proxy reads (Admission.buffer). */
  readonly admission: SharedArrayBuffer
  readonly instance: string
  /** SQLite's WAL checkpoints on their own thread rather than inside a commit (checkpointer.ts): for an engine on the proxy's thread. */
  readonly backgroundCheckpoints?: boolean
}

/** What a committed batch answers: `seqs[i]` is record i's seq, or 0 when it failed, with its reason in `errors[i]`. */
export interface BatchResult {
  readonly seqs: number[]
  readonly errors?: Record<number, string>
}

/**
 * Everything an audit append costs — canonical JSON, the keyed hash, the commit — and the watch
 * over the ability to write (AuditHealth), which opens and closes admission for the proxy. Runs on
 * the audit thread (audit-worker.ts), or on the proxy's own thread when a commit is cheap enough
 * not to need one (AuditWriter decides). Owns its own connection to the store.
 */
export class AuditEngine {
  readonly #store: Store
  readonly #log: AuditLog
  readonly #health: AuditHealth
  readonly #timers: NodeJS.Timeout[]

  private constructor(store: Store, log: AuditLog, health: AuditHealth, timers: NodeJS.Timeout[]) {
    this.#store = store
    this.#log = log
    this.#health = health
    this.#timers = timers
  }

  /** Opens the store and checks it can write; resolves once admission reflects that. `report` hears every change of admission. */
  static async open(options: EngineOptions, report: (change: HealthChange) => void): Promise<AuditEngine> {
    // Waiting for another process's write lock on a SQLite audit file must not stop the event loop it may share.
    const store = await openStore(options.store, { auditYieldsWhenBusy: true, backgroundCheckpoints: options.backgroundCheckpoints === true })
    const spool = options.spool === undefined ? undefined : { spool: AuditSpool.open(options.spool), unreachable: isServerUnreachable }
    const log = new AuditLog(store.audit, Buffer.from(options.key), Date.now, options.instance, spool)
    const health = new AuditHealth({
      admission: new Admission(options.admission),
      // Disk space is held beside a SQLite audit file; a PostgreSQL server's disk is its operator's to watch.
      reserve: options.store.kind !== 'sqlite' || options.store.path === ':memory:' ? undefined : new AuditReserve(auditPathFor(options.store.path), options.reserveBytes),
      append: (fields) => log.append(fields),
      report,
    })
    const timers = [
      // Spooled records (this process's, or left by one that stopped) go into the store as soon as it answers.
      setInterval(() => void log.flushSpool(), 500),
      setInterval(() => void health.check(), 250),
    ]
    // The proxy's event loop must not be kept alive by the audit's housekeeping alone.
    for (const timer of timers) timer.unref()
    void log.flushSpool()
    await health.check()
    return new AuditEngine(store, log, health, timers)
  }

  /**
   * Commits a batch in one transaction (its records are appended in the same turn). If that
   * fails, admission closes, the reserve is released and the failed records are committed once
   * more into the space it gave back: they are owed to requests already admitted.
   */
  async commit(batch: readonly AuditFields[]): Promise<BatchResult> {
    // One transaction: the batch is committed whole or not at all.
    let result = await this.#log.appendBatch(batch).catch((err: unknown) => new BatchFailed(err))
    if (result instanceof BatchFailed) {
      this.#health.commitFailed()
      result = await this.#log.appendBatch(batch).catch((err: unknown) => new BatchFailed(err))
      if (result instanceof BatchFailed) this.#health.lost(batch.length)
    }
    this.#health.checkSoon()
    if (!(result instanceof BatchFailed)) return { seqs: result.map((record) => record.seq) }
    const reason = String(result.cause)
    const errors: Record<number, string> = {}
    for (let i = 0; i < batch.length; i++) errors[i] = reason
    return { seqs: batch.map(() => 0), errors }
  }

  /** Stops the housekeeping, waits for what is under way, closes the store. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer)
    await this.#health.settled()
    await this.#store.close()
  }

}

/** Why a batch was not committed. */
class BatchFailed {
  readonly cause: unknown
  constructor(cause: unknown) {
    this.cause = cause
  }
}
