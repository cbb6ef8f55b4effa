import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { primaryCode, SQLITE_BUSY, SQLITE_READONLY } from '../sqlite-file.ts'

/**
 * The audit file's facets, indexed in arrears. A request's commit writes its row to `audit` with
 * its facet columns and only the index chainLast needs (audit_by_chain); the facet indexes are on
 * `audit_facets` (AUDIT_MIGRATIONS[4]), which a catch-up fills from committed rows, many at a time.
 * Each index costs every transaction that touches it a page written to the WAL: a commit of one
 * row with the eight facet indexes cost ~60 µs CPU, ~24 without them, while a catch-up writes
 * hundreds of rows' index entries into the same few pages, ~4 µs a row (bench/audit-arrears.ts).
 *
 * Invariant: `audit_facets` holds the facets of exactly the rows of `audit` whose seq is at most
 * its own highest seq (the watermark). A catch-up is one write transaction that copies the rows
 * after the watermark in seq order (a prefix of them), so it keeps the invariant, and a catch-up
 * cut short by a crash leaves nothing (rerun, it copies the same rows once). No row can appear
 * later below the watermark: seq is the rowid, SQLite gives a new row max(rowid) + 1 under the
 * file's write lock, and rows are never deleted, so a row committed later has a higher seq than
 * every row committed before it, whichever process wrote it. Several processes may catch up on one
 * file: each catch-up reads the watermark inside its own write transaction.
 *
 * A read by facets is the union of the indexed rows and the tail after the watermark, scanned in
 * `audit` by rowid range, in one statement (one snapshot): it answers exactly what one indexed
 * table would, a row committed a moment ago included.
 */

/** The facet columns (AUDIT_MIGRATIONS[1] and [3]), in AuditFacets' terms: on `audit` and on `audit_facets`. */
export const FACETS = ['time', 'session', 'agent', 'user', 'workspace', 'task', 'connector', 'decision', 'error', 'mode', 'phase'] as const

/** The watermark, as a scalar subquery: the highest seq whose facets are indexed (0 before any). */
export const INDEXED_UP_TO = '(SELECT ifnull(max(seq), 0) FROM audit_facets)'

/**
 * The facet columns `columns` of every row of the log whose facets satisfy `where` (a condition on
 * facet columns only, unqualified), as one relation: the indexed rows, then the tail. `where`'s
 * parameters are bound twice, once per half (bindTwice).
 */
export function facetRows(columns: string, where: string): string {
  return `(SELECT ${columns} FROM audit_facets WHERE ${where} UNION ALL SELECT ${columns} FROM audit WHERE seq > ${INDEXED_UP_TO} AND ${where})`
}

export function bindTwice<T>(params: readonly T[]): T[] {
  return [...params, ...params]
}

export interface ArrearsOptions {
  /** Rows copied by one catch-up transaction, at most: bounds how long it holds the write lock. */
  readonly batchRows: number
  /** Rows this connection committed that make a catch-up due at once (in the next turn of the event loop). */
  readonly everyRows: number
  /** How long after this connection's first uncopied commit a catch-up runs anyway (at low load). */
  readonly withinMs: number
  /** A read by facets that finds more rows than this in the tail catches up first. */
  readonly tailBound: number
}

/**
 * Measured with bench/audit-arrears.ts (2 shared cores, one record per commit): a catch-up of 256
 * rows holds the write lock 0.7 ms (median) and adds ~4 µs CPU a row; of 1,024 rows, 2.3 ms and
 * ~3.5 µs; of 64, 0.3 ms and ~6 µs. The catch-up runs on the writer's own thread (the audit
 * engine's: the proxy's, or the audit thread), so its hold is a pause of that thread's event loop,
 * at 1,000 requests/s one of 0.7 ms every quarter second: 256 keeps it well under the +2 ms a
 * request's p99 may cost, for nearly all of the saving. Moving it to the checkpoint thread would
 * not save CPU (it is counted for the whole process) and would make commits wait for its lock.
 * A query by a facet reads a tail of 2,048 rows in ~0.2 ms (8,192: ~1.7 ms).
 */
export const ARREARS: ArrearsOptions = { batchRows: 256, everyRows: 256, withinMs: 1000, tailBound: 2048 }

/**
 * The catch-up of one connection to the audit file (see above). It runs on the thread of the
 * connection that appends: after `everyRows` of its commits (in the next turn, so the response the
 * last one was owed to goes first), or `withinMs` after the first. It never waits for the write
 * lock: another connection holding it (SQLITE_BUSY) puts the catch-up off. A catch-up that fails
 * otherwise is dropped until the next commit: the data is derived, and reads stay exact (the tail).
 */
export class FacetArrears {
  readonly #db: DatabaseSync
  readonly #options: ArrearsOptions
  readonly #copy: StatementSync
  readonly #tail: StatementSync
  readonly #busyTimeout: StatementSync
  #owed = 0
  #timer: NodeJS.Timeout | undefined
  #immediate: NodeJS.Immediate | undefined

  constructor(db: DatabaseSync, options: ArrearsOptions = ARREARS) {
    this.#db = db
    this.#options = options
    const columns = FACETS.join(', ')
    this.#copy = db.prepare(`INSERT OR IGNORE INTO audit_facets (seq, ${columns}) SELECT seq, ${columns} FROM audit WHERE seq > ${INDEXED_UP_TO} ORDER BY seq LIMIT ?`)
    this.#tail = db.prepare(`SELECT (SELECT ifnull(max(seq), 0) FROM audit) - ${INDEXED_UP_TO} AS seqs`)
    this.#busyTimeout = db.prepare('PRAGMA busy_timeout')
  }

  /** How far the index is behind, in seqs: at least the rows of the tail. */
  tail(): number {
    return Number(this.#tail.get()?.seqs ?? 0)
  }

  /**
   * One catch-up transaction: copies the facets of up to `batchRows` rows after the watermark.
   * Returns how many it copied, or undefined when another connection holds the write lock.
   */
  catchUp(): number | undefined {
    const kept = Number(this.#busyTimeout.get()?.timeout ?? 0)
    this.#db.exec('PRAGMA busy_timeout = 0')
    try {
      this.#db.exec('BEGIN IMMEDIATE')
    } catch (err) {
      if (primaryCode(err) === SQLITE_BUSY) return undefined
      throw err
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${kept}`)
    }
    try {
      const copied = Number(this.#copy.run(this.#options.batchRows).changes)
      this.#db.exec('COMMIT')
      return copied
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
      throw err
    }
  }

  /** Before a read by facets: a tail longer than `tailBound` is caught up now, unless the file is busy or read-only (then the read scans the longer tail, still exact). */
  bound(): void {
    for (let tries = Math.ceil(this.tail() / this.#options.batchRows); tries > 0 && this.tail() > this.#options.tailBound; tries--) {
      try {
        if (this.catchUp() === undefined) return
      } catch (err) {
        if (primaryCode(err) === SQLITE_READONLY) return
        throw err
      }
    }
  }

  /** This connection committed `rows` rows: schedules the catch-up they make due. */
  appended(rows: number): void {
    this.#owed += rows
    if (this.#owed >= this.#options.everyRows) this.#immediate ??= setImmediate(() => this.#run())
    else this.#timer ??= setTimeout(() => this.#run(), this.#options.withinMs).unref()
  }

  /** A scheduled catch-up: batch after batch, a turn of the event loop between them, until the tail is copied. */
  #run(): void {
    clearTimeout(this.#timer)
    clearImmediate(this.#immediate)
    this.#timer = undefined
    this.#immediate = undefined
    if (!this.#db.isOpen) return
    let copied: number | undefined
    try {
      copied = this.catchUp()
    } catch {
      this.#owed = 0
      return
    }
    if (copied === undefined) this.#timer = setTimeout(() => this.#run(), BUSY_RETRY_MS).unref()
    else if (copied === this.#options.batchRows) this.#immediate = setImmediate(() => this.#run())
    else this.#owed = 0
  }
}

/** How soon a catch-up that found the file busy tries again. */
const BUSY_RETRY_MS = 20
