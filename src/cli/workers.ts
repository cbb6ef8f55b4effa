import cluster, { type Worker } from 'node:cluster'
import type { Logger } from '../log.ts'

export interface WorkerPoolOptions {
  readonly count: number
  readonly log: Logger
  /** How long stopping waits for the workers (they finish requests in flight first), then kills them. */
  readonly stopTimeoutMs: number
}

/** Restarts allowed within RESTART_WINDOW_MS before the pool gives up (a worker that cannot start). */
const MAX_RESTARTS = 10
const RESTART_WINDOW_MS = 60_000
const FIRST_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 15_000

/**
 * `keyvalet start --workers N`: the primary process forks N workers (node:cluster), each running
 * `keyvalet start` itself — its own store connections and its own audit chain — while the
 * listeners are shared: cluster's primary accepts each connection and hands it to the workers in
 * turn (round-robin), so a listener on port 0 is one port for all of them and connections spread
 * evenly. A worker that dies is restarted after a backoff that doubles from 250 ms (up to 15 s),
 * logged; past MAX_RESTARTS within a minute the pool stops everything and fails. `reload` sends
 * SIGHUP to every worker; `stop` sends SIGTERM to every worker and waits for them.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions
  readonly #restarts: number[] = []
  #stopping = false
  #failed: ((err: Error) => void) | undefined
  readonly #pending = new Set<NodeJS.Timeout>()

  constructor(options: WorkerPoolOptions) {
    this.#options = options
    this.failed.catch(() => {}) // observed by whoever races it; never an unhandled rejection
  }

  /** Forks the workers; resolves when each is listening. Rejects (never resolving `failed`) when one dies first. */
  async start(): Promise<void> {
    cluster.on('exit', (worker, code, signal) => this.#exited(worker, code, signal))
    await Promise.all(Array.from({ length: this.#options.count }, () => this.#fork()))
  }

  /** Resolves never; rejects once the pool gave up restarting. */
  readonly failed = new Promise<never>((_resolve, reject) => {
    this.#failed = reject
  })

  reload(): void {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP')
  }

  async stop(): Promise<void> {
    this.#stopping = true
    for (const timer of this.#pending) clearTimeout(timer)
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    const exits = workers.map((w) => (w.isDead() ? Promise.resolve() : new Promise<void>((resolve) => w.once('exit', () => resolve()))))
    for (const worker of workers) worker.process.kill('SIGTERM')
    const timer = setTimeout(() => { for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL') }, this.#options.stopTimeoutMs)
    await Promise.all(exits)
    clearTimeout(timer)
  }

  #fork(): Promise<void> {
    const worker = cluster.fork()
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`worker ${worker.process.pid} exited (${code}) before it listened`))
      worker.once('listening', () => {
        worker.off('exit', onExit)
        this.#options.log.info('worker started', { pid: worker.process.pid })
        resolve()
      })
      worker.once('exit', onExit)
    })
  }

  #exited(worker: Worker, code: number | null, signal: string | null): void {
    if (this.#stopping) return
    const now = Date.now()
    this.#restarts.push(now)
    while ((this.#restarts[0] ?? now) < now - RESTART_WINDOW_MS) this.#restarts.shift()
    if (this.#restarts.length > MAX_RESTARTS) {
      this.#options.log.error('workers keep dying: stopping', { pid: worker.process.pid, code, signal, restarts: this.#restarts.length })
      this.#failed?.(new Error(`workers died ${this.#restarts.length} times within ${RESTART_WINDOW_MS / 1000} s`))
      return
    }
    const backoffMs = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (this.#restarts.length - 1))
    this.#options.log.error('worker exited: restarting it', { pid: worker.process.pid, code, signal, backoff_ms: backoffMs })
    const timer = setTimeout(() => {
      this.#pending.delete(timer)
      if (!this.#stopping) this.#fork().catch((err: unknown) => this.#options.log.error('worker failed to start', { error: String(err) }))
    }, backoffMs)
    this.#pending.add(timer)
  }
}
