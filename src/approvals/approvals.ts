import { randomBytes } from 'node:crypto'
import { KeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Approval, ApprovalState, PendingApproval, Verdict } from '../model/approval.ts'
import type { ApprovalSignals } from '../store/approval-signals.ts'
import type { ApprovalRepo } from '../store/store.ts'

/** How often an instance asks the store about the approvals its requests wait for. */
export const DEFAULT_POLL_MS = 250

export interface ApprovalsOptions {
  readonly repo: ApprovalRepo
  /** Epoch ms: deadlines and decision times. */
  readonly clock: () => number
  readonly log: Logger
  readonly pollMs?: number
  /** The store's word that an approval changed (its change feed on PostgreSQL, this process on SQLite): wakes the request at once; the poll stays as the fallback. */
  readonly signals?: ApprovalSignals | undefined
  /** Told of each new pending approval (the webhook), after it is in the store; never awaited. */
  readonly onPending?: (approval: Approval) => void
  /** Told how each parked request's wait ended (the metrics, the webhook): the approval as it ended, and how long it waited. Not for a request an earlier approval let through. */
  readonly onSettled?: (approval: Approval & { readonly state: Exclude<ApprovalState, 'pending'> }, waitedMs: number) => void
}

/** How a request's wait ended: the approval as decided, and whether an earlier "identical requests" approval let it through. */
export interface Outcome {
  readonly approval: Approval
  readonly remembered: boolean
}

interface Waiter {
  readonly pending: PendingApproval
  settle(approval: Approval): void
}

/**
 * Requests held open for a person's yes, on one instance. A request parks with `wait`; a decision
 * is taken with `decide` on any instance sharing the store (the repo takes exactly one state change
 * per approval). Each instance runs one poll loop, only while requests wait, that asks the store in
 * one query every `pollMs` which of its own approvals were decided, and ends those past their
 * deadline (expired): no timer per request. A decision taken on this instance wakes its request at
 * once; one taken on another instance does too when the store signals it (`signals`: the approval
 * is read again on its signal), else within one poll.
 */
export class Approvals {
  readonly #repo: ApprovalRepo
  readonly #clock: () => number
  readonly #log: Logger
  readonly #pollMs: number
  readonly #onPending: ((approval: Approval) => void) | undefined
  readonly #onSettled: ApprovalsOptions['onSettled']
  readonly #waiters = new Map<string, Waiter>()
  readonly #parked = new Set<() => void>()
  readonly #signals: ApprovalSignals | undefined
  #timer: NodeJS.Timeout | undefined
  #unwatch: (() => void) | undefined
  #polling = false

  constructor(opts: ApprovalsOptions) {
    this.#repo = opts.repo
    this.#clock = opts.clock
    this.#log = opts.log
    this.#pollMs = opts.pollMs ?? DEFAULT_POLL_MS
    this.#onPending = opts.onPending
    this.#onSettled = opts.onSettled
    this.#signals = opts.signals
  }

  get repo(): ApprovalRepo {
    return this.#repo
  }

  /** How many requests wait on this instance now. */
  get waiting(): number {
    return this.#waiters.size
  }

  static newId(): string {
    return `apr_${randomBytes(8).toString('hex')}`
  }

  /**
   * Parks a request until it is decided, expires, or `signal` aborts (the sandbox left: the
   * approval is cancelled, and the abort's reason thrown). An earlier approval of the same session
   * and digest that its approver let identical requests through with lets it pass at once. With
   * `maxPendingPerSession`, a request whose session already has that many pending is refused
   * (approval_limit_reached) and nobody is asked.
   */
  async wait(pending: PendingApproval, signal: AbortSignal | undefined, maxPendingPerSession?: number): Promise<Outcome> {
    signal?.throwIfAborted()
    const remembered = await this.#repo.remembered(pending.session, pending.digest, this.#clock())
    if (remembered !== undefined) return { approval: remembered, remembered: true }
    if (maxPendingPerSession === undefined) await this.#repo.insert(pending)
    else if (!(await this.#repo.insertWithin(pending, maxPendingPerSession, this.#clock()))) {
      throw new KeyvaletError('approval_limit_reached', {
        message: `This task already has ${maxPendingPerSession} requests waiting for approval, as many as it may; this one was not sent. Retry once a decision is taken.`,
        detail: { limit: maxPendingPerSession },
      })
    }
    const decided = new Promise<Approval>((resolve) => {
      this.#waiters.set(pending.id, { pending, settle: resolve })
    })
    this.#start()
    for (const wake of this.#parked) wake()
    if (this.#onPending !== undefined) {
      const stored = await this.#repo.get(pending.id).catch(() => undefined)
      if (stored !== undefined) this.#onPending(stored)
    }
    const parkedAt = performance.now()
    const settled = (approval: Approval): void => {
      const state = approval.state === 'pending' ? 'expired' : approval.state
      this.#onSettled?.({ ...approval, state }, performance.now() - parkedAt)
    }
    if (signal === undefined) {
      const approval = await decided
      settled(approval)
      return { approval, remembered: false }
    }
    const gone = new Promise<never>((_, reject) => {
      const onAbort = (): void => reject(signal.reason)
      if (signal.aborted) onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      void decided.then(() => signal.removeEventListener('abort', onAbort))
    })
    try {
      const approval = await Promise.race([decided, gone])
      settled(approval)
      return { approval, remembered: false }
    } catch (err) {
      this.#waiters.delete(pending.id)
      settled({ ...pending, state: 'cancelled', decidedAt: this.#clock(), approver: undefined, reason: undefined, rememberUntil: undefined })
      await this.#repo.close(pending.id, 'cancelled', this.#clock()).catch((e: unknown) => this.#log.error('approval cancel failed', { approval: pending.id, error: String(e) }))
      throw err
    }
  }

  /**
   * Takes a person's verdict on a pending approval (from any instance). Refused with
   * admin_not_found for an unknown id, admin_approval_closed for one already decided, expired or
   * cancelled (a verdict at or after its deadline included).
   */
  async decide(id: string, verdict: Verdict): Promise<Approval> {
    const decided = await this.#repo.decide(id, verdict)
    if (decided === undefined) {
      const found = await this.#repo.get(id)
      if (found === undefined) throw new KeyvaletError('admin_not_found', { message: `No approval ${id}.` })
      const state = found.state === 'pending' ? 'expired' : found.state
      throw new KeyvaletError('admin_approval_closed', { message: `Approval ${id} is no longer pending: it was ${state}.`, detail: { state } })
    }
    this.#waiters.get(id)?.settle(decided)
    this.#waiters.delete(id)
    return decided
  }

  /** Resolves when a request parks on this instance, or after `ms`, or when `signal` aborts: a long poll's wait between reads of the store. */
  async parkedOrAfter(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#parked.delete(done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#parked.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Stops the poll loop (at shutdown: the requests still waiting are cut by it, and cancel their approvals). */
  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#unwatch?.()
    this.#unwatch = undefined
  }

  #start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => void this.#poll(), this.#pollMs)
    this.#unwatch = this.#signals?.watch((id) => void this.#signalled(id))
  }

  /** A signal from the store: the approval, if one of ours, is read again; undefined (changes may have gone unheard): a poll now. */
  async #signalled(id: string | undefined): Promise<void> {
    if (id === undefined) return this.#poll()
    if (!this.#waiters.has(id)) return
    try {
      const approval = await this.#repo.get(id)
      if (approval !== undefined && approval.state !== 'pending') this.#wake(approval)
    } catch (err) {
      this.#log.error('approval read failed', { approval: id, error: String(err) })
    }
  }

  /** One turn of the loop: the decisions taken elsewhere, then the deadlines passed. Skipped while the previous turn still runs. */
  async #poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    try {
      if (this.#waiters.size > 0) {
        for (const approval of await this.#repo.settled([...this.#waiters.keys()])) this.#wake(approval)
      }
      const now = this.#clock()
      for (const [id, waiter] of this.#waiters) {
        if (waiter.pending.expiresAt <= now) await this.#expire(id, now)
      }
    } catch (err) {
      this.#log.error('approval poll failed', { error: String(err) })
    } finally {
      this.#polling = false
      if (this.#waiters.size === 0) this.close()
    }
  }

  /** Ends a request's wait at its deadline, unless a decision won the race in the store (then that decision stands). */
  async #expire(id: string, now: number): Promise<void> {
    const waiter = this.#waiters.get(id)
    if (waiter === undefined) return
    try {
      if (!(await this.#repo.close(id, 'expired', now))) {
        const found = await this.#repo.get(id)
        if (found !== undefined && found.state !== 'pending') return this.#wake(found)
      }
      const found = await this.#repo.get(id)
      if (found !== undefined) return this.#wake(found)
    } catch (err) {
      this.#log.error('approval expiry failed', { approval: id, error: String(err) })
    }
    // The store could not be read: the request is refused all the same (no decision is taken after the deadline).
    this.#waiters.delete(id)
    waiter.settle({ ...waiter.pending, state: 'expired', decidedAt: now, approver: undefined, reason: undefined, rememberUntil: undefined })
  }

  #wake(approval: Approval): void {
    const waiter = this.#waiters.get(approval.id)
    if (waiter === undefined) return
    this.#waiters.delete(approval.id)
    waiter.settle(approval)
  }
}
