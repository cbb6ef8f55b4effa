import { Worker } from 'node:worker_threads'
import type { DatabaseSync, StatementSync } from 'node:sqlite'

/** SQLite's own default: what a connection does whenever the thread is not running. */
const AUTOCHECKPOINT_PAGES = 1000
/** Problems kept for a listener that comes later. */
const MAX_PROBLEMS = 20

export interface CheckpointerOptions {
  /** The thread's code (default checkpoint-worker.mjs). */
  readonly script?: URL
  /** How often the thread checkpoints each file (default 100 ms). */
  readonly checkpointEveryMs?: number
  /** How often the registered connections' writes are counted (default 1 s). */
  readonly watchEveryMs?: number
  /** Rows written within one watch for the thread to start (default 100). */
  readonly busyChanges?: number
  /** Without a write for this long, the thread stops (default 30 s). */
  readonly idleStopMs?: number
}

interface Connection {
  readonly path: string
  readonly changes: StatementSync
  last: number
}

/**
 * WAL checkpoints off the proxy's thread while the store is busy. SQLite checkpoints inside
 * whichever commit takes the WAL past 1,000 pages: that commit copies the WAL into the file and
 * fsyncs both, and every request waiting on the thread waits with it. Measured with
 * `node bench/audit-stalls.ts` (one audit record per commit, quiet machine): a commit's p99 went
 * from 3.1 to 0.21 ms and p99.9 from 4.8 to 0.64 ms with the checkpoints on the thread.
 *
 * The thread costs ~18 MiB, so it runs only while the registered connections write (over
 * `busyChanges` rows in a `watchEveryMs`); then they stop checkpointing by themselves
 * (wal_autocheckpoint 0) and the thread checkpoints their files every `checkpointEveryMs`. After
 * `idleStopMs` without a write they checkpoint by themselves again and the thread ends: an idle
 * keyvalet holds no thread for it. If the thread cannot start or dies, the connections go back to
 * checkpointing by themselves at once (the stall comes back, nothing is lost, the WAL stays
 * bounded) and `onProblem` listeners hear why.
 */
export class Checkpointer {
  readonly #options: Required<CheckpointerOptions>
  readonly #connections = new Map<DatabaseSync, Connection>()
  readonly #listeners = new Set<(problem: string) => void>()
  #worker: Worker | undefined
  #watch: NodeJS.Timeout | undefined
  #lastWrite = 0
  /** The last problems (at most MAX_PROBLEMS), for a listener that comes later. */
  readonly problems: string[] = []

  constructor(options: CheckpointerOptions = {}) {
    this.#options = {
      script: options.script ?? new URL('./checkpoint-worker.mjs', import.meta.url),
      checkpointEveryMs: options.checkpointEveryMs ?? 100,
      watchEveryMs: options.watchEveryMs ?? 1000,
      busyChanges: options.busyChanges ?? 100,
      idleStopMs: options.idleStopMs ?? 30_000,
    }
  }

  /** Hears every problem: those kept so far at once, then each new one. Returns the unsubscribe. */
  onProblem(listener: (problem: string) => void): () => void {
    for (const problem of this.problems) listener(problem)
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  /** Whether the thread is checkpointing now. */
  get running(): boolean {
    return this.#worker !== undefined
  }

  /**
   * Watches `db`'s writes, and checkpoints its file on the thread while it is busy. Returns the
   * release (call before closing `db`): it resolves once the thread holds the file no longer (its
   * connection closed), so that once every connection is closed the file is free (its -wal and
   * -shm gone) when the store's close resolves.
   */
  register(db: DatabaseSync): () => Promise<void> {
    const path = db.location()
    if (path === null) return async () => undefined
    const changes = db.prepare('SELECT total_changes() AS n')
    this.#connections.set(db, { path, changes, last: Number(changes.get()?.n) })
    if (this.#worker !== undefined) this.#hand(db, path)
    this.#watch ??= setInterval(() => this.#tick(), this.#options.watchEveryMs).unref()
    return () => this.#release(db)
  }

  #release(db: DatabaseSync): Promise<void> {
    const connection = this.#connections.get(db)
    if (connection === undefined) return Promise.resolve()
    this.#connections.delete(db)
    const worker = this.#worker
    const lastOfFile = ![...this.#connections.values()].some((c) => c.path === connection.path)
    if (worker !== undefined && lastOfFile) worker.postMessage({ type: 'remove', path: connection.path })
    if (this.#connections.size === 0) {
      clearInterval(this.#watch)
      this.#watch = undefined
      this.#stop()
    }
    return worker !== undefined && lastOfFile ? fileLetGo(worker, connection.path) : Promise.resolve()
  }

  #tick(): void {
    let written = 0
    for (const [db, connection] of this.#connections) {
      if (!db.isOpen) continue
      const now = Number(connection.changes.get()?.n)
      written += now - connection.last
      connection.last = now
    }
    const now = Date.now()
    if (written > 0) this.#lastWrite = now
    if (this.#worker === undefined && written >= this.#options.busyChanges) this.#start()
    else if (this.#worker !== undefined && now - this.#lastWrite >= this.#options.idleStopMs) this.#stop()
  }

  #start(): void {
    let worker: Worker
    try {
      worker = new Worker(this.#options.script, { workerData: { intervalMs: this.#options.checkpointEveryMs } })
    } catch (err) {
      return this.#problem(`cannot start the checkpoint thread: ${(err as Error).message}`)
    }
    // The thread never keeps the process alive: a store that is not closed must not hang an exit.
    worker.unref()
    worker.on('message', (reply: { type: string; path: string; message?: string }) => {
      if (reply.type === 'failed') this.#problem(`checkpoint of ${reply.path} failed: ${reply.message ?? ''}`)
    })
    worker.on('error', (err) => this.#ended(worker, `the checkpoint thread failed: ${err.message}`))
    worker.on('exit', (code) => this.#ended(worker, `the checkpoint thread exited (code ${code})`))
    this.#worker = worker
    for (const [db, connection] of this.#connections) if (db.isOpen) this.#hand(db, connection.path)
  }

  /** From now on the thread checkpoints `path`, and `db` no longer does. */
  #hand(db: DatabaseSync, path: string): void {
    this.#worker?.postMessage({ type: 'add', path })
    db.exec('PRAGMA wal_autocheckpoint = 0')
  }

  /** Every connection checkpoints by itself again, then the thread ends. */
  #stop(): void {
    const worker = this.#worker
    if (worker === undefined) return
    this.#worker = undefined
    this.#checkpointBySelf()
    worker.postMessage({ type: 'stop' })
  }

  /** The thread ended without being stopped (it failed): the connections that counted on it checkpoint by themselves again. */
  #ended(worker: Worker, problem: string): void {
    if (this.#worker !== worker) return
    this.#worker = undefined
    this.#checkpointBySelf()
    this.#problem(`${problem}; each connection checkpoints inside its commits again (slower, nothing lost)`)
  }

  #checkpointBySelf(): void {
    for (const db of this.#connections.keys()) if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  }

  #problem(problem: string): void {
    this.problems.push(problem)
    if (this.problems.length > MAX_PROBLEMS) this.problems.shift()
    for (const listener of this.#listeners) listener(problem)
  }
}

/** How long a release waits, at most, for the thread to say it closed a file (it answers in well under a millisecond). */
const LET_GO_WAIT_MS = 2000

/** Resolves once `worker` says it closed `path` (its answer to 'remove', or to 'stop'), or has ended. */
function fileLetGo(worker: Worker, path: string): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      worker.off('message', onMessage)
      worker.off('exit', done)
      resolve()
    }
    const onMessage = (reply: { type: string; path?: string }): void => {
      if ((reply.type === 'removed' && reply.path === path) || reply.type === 'stopped') done()
    }
    const timer = setTimeout(done, LET_GO_WAIT_MS).unref()
    worker.on('message', onMessage)
    worker.once('exit', done)
  })
}

/** The process's (each thread's) one checkpointer. */
export const checkpointer = new Checkpointer()
