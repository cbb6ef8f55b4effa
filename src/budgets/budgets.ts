import { KeyvaletError } from '../errors.ts'
import type { Budget, BudgetMetric } from '../model/budget.ts'
import type { Session } from '../model/session.ts'
import type { CounterRepo } from '../store/store.ts'
import { CounterLeases } from './leases.ts'

/** What one exchange used of the post-paid metrics, once it is over. */
export interface Spent {
  readonly bytes_up: number
  readonly bytes_down: number
  readonly tokens: number
  readonly cost: number
}

/** The counters a request was admitted against, kept on its context until its exchange is charged. */
export interface Admission {
  readonly charges: readonly Counter[]
}

/** One counter of one budget for one subject (and window). */
interface Counter {
  readonly budget: string
  readonly metric: BudgetMetric
  readonly key: string
  readonly limit: number
  readonly expiresAt: number
  /** Epoch ms the window ends; undefined for a budget over the session's life. */
  readonly resetsAt: number | undefined
}

/** How much of one limit is used, for `session show` and the admin API. */
export interface BudgetUse {
  readonly budget: string
  readonly metric: BudgetMetric
  readonly per: Budget['per'] | 'this session'
  readonly connector: string | null
  readonly rule: string | null
  readonly used: number
  readonly limit: number
  readonly left: number
  /** When the window ends (ISO 8601); null over the session's life. */
  readonly resets_at: string | null
}

/** The budget a session was given itself (`session create --budget N`): its requests, over its life. */
export const SESSION_BUDGET = 'session'

/**
 * Budgets and rate limits on the store's counters, so every instance on one store shares them.
 *
 * Algorithm, for a request the policy allowed (`admit`), against each budget that applies to it
 * (its connector, its rule) and the session's own request budget:
 *   1. post-paid limits (bytes, tokens, cost: known only when an exchange ends): refused when the
 *      total has already reached the limit. A read (cached for up to a second, CounterLeases.total);
 *      requests in flight together may each cross it.
 *   2. `requests`: one unit spent from this instance's lease of the counter (CounterLeases), which
 *      the store only ever grants within the limit, atomically across processes, and one by one
 *      near it, so N concurrent requests against a limit of L get exactly min(N, L). A refusal by a
 *      later budget gives back the requests already spent for this request.
 * Then `charge` adds what the exchange used to the post-paid counters.
 *
 * A rate is a fixed window: the window's start is part of the counter's key, and the counter
 * expires with the window. That is one atomic conditional add per request on a counter that can
 * only be spent from, which a sliding log (a row per request) or a token bucket (a read, a refill
 * computation and a write of two values) cannot be on this interface; the price is that up to
 * twice the limit can pass around a window's edge, which the window's length bounds.
 */
export class Budgets {
  readonly #counters: CounterRepo
  readonly #budgets: readonly Budget[]
  readonly #leases: CounterLeases

  /** `leases`: this instance's, shared by every configuration generation (a reload keeps what was leased). */
  constructor(counters: CounterRepo, budgets: readonly Budget[], leases: CounterLeases = new CounterLeases(counters)) {
    this.#counters = counters
    this.#budgets = budgets
    this.#leases = leases
  }

  /** The configured budgets that may apply to a connector's requests (none: the stage returns at once for a session without a budget of its own). */
  for(connector: string): readonly Budget[] {
    return this.#budgets.filter((b) => b.connector === undefined || b.connector === connector)
  }

  /** Refuses (rate_limited, budget_exhausted) or admits the request; see the class comment. */
  async admit(session: Session, budgets: readonly Budget[], rule: string | undefined, now: number): Promise<Admission> {
    const counters = this.#applying(session, budgets, rule, now)
    for (const counter of counters) {
      if (counter.metric === 'requests') continue
      if ((await this.#leases.total(counter, now)) >= counter.limit) throw refusal(counter, now)
    }
    const spent: Counter[] = []
    for (const counter of counters) {
      if (counter.metric !== 'requests') continue
      if (!(await this.#leases.spendOne(counter, now))) {
        for (const back of spent) this.#leases.giveBackOne(back)
        throw refusal(counter, now)
      }
      spent.push(counter)
    }
    return { charges: counters.filter((c) => c.metric !== 'requests') }
  }

  /** Adds what an admitted exchange used to its post-paid counters. */
  async charge(admission: Admission, spent: Spent, now: number): Promise<void> {
    for (const counter of admission.charges) {
      const amount = spent[counter.metric as keyof Spent]
      if (amount > 0) await this.#leases.charge(counter, amount, now)
    }
  }

  /**
   * For an exchange still open (a WebSocket): charges what it used since the last call, like
   * `charge`, then gives the refusal the next request would get if a post-paid limit it counts
   * against has been reached (undefined while none has).
   */
  async chargeOpen(admission: Admission, spent: Spent, now: number): Promise<KeyvaletError | undefined> {
    await this.charge(admission, spent, now)
    for (const counter of admission.charges) {
      if ((await this.#leases.total(counter, now)) >= counter.limit) return refusal(counter, now)
    }
    return undefined
  }

  /**
   * What the session has used and has left of every budget that applies to it (for `session show`
   * and the admin API): the store's total less the units of `requests` leased by this instance and
   * not yet spent (CounterLeases). Exact on one instance; units other instances have leased and
   * not spent count as used, so across a fleet `used` may run ahead of the requests forwarded.
   */
  async report(session: Session, now: number): Promise<BudgetUse[]> {
    const uses: BudgetUse[] = []
    const scoped = new Map(this.#budgets.map((b) => [b.name, b]))
    for (const counter of this.#countersOf(session, this.#budgets, now)) {
      const budget = scoped.get(counter.budget)
      const used = Math.max(0, (await this.#counters.used(counter.key, now)) - this.#leases.leased(counter.key))
      uses.push({
        budget: counter.budget, metric: counter.metric, per: budget?.per ?? 'this session', connector: budget?.connector ?? null, rule: budget?.rule ?? null,
        used, limit: counter.limit, left: Math.max(0, counter.limit - used), resets_at: counter.resetsAt === undefined ? null : new Date(counter.resetsAt).toISOString(),
      })
    }
    return uses
  }

  #applying(session: Session, budgets: readonly Budget[], rule: string | undefined, now: number): Counter[] {
    return this.#countersOf(session, budgets.filter((b) => b.rule === undefined || b.rule === rule), now)
  }

  #countersOf(session: Session, budgets: readonly Budget[], now: number): Counter[] {
    const counters: Counter[] = []
    if (session.budget !== undefined) {
      counters.push({ budget: SESSION_BUDGET, metric: 'requests', key: `session:${session.id}:requests`, limit: session.budget, expiresAt: session.expiresAt, resetsAt: undefined })
    }
    for (const budget of budgets) {
      const windowStart = budget.windowMs === undefined ? undefined : now - (now % budget.windowMs)
      const resetsAt = windowStart === undefined || budget.windowMs === undefined ? undefined : windowStart + budget.windowMs
      const subject = `${budget.per}=${encodeURIComponent(budget.per === 'session' ? session.id : session[budget.per])}`
      for (const [metric, limit] of Object.entries(budget.limits) as [BudgetMetric, number][]) {
        const key = `budget:${budget.name}:${metric}:${subject}${windowStart === undefined ? '' : `:${windowStart}`}`
        counters.push({ budget: budget.name, metric, key, limit, expiresAt: resetsAt ?? session.expiresAt, resetsAt })
      }
    }
    return counters
  }
}

function refusal(counter: Counter, now: number): KeyvaletError {
  const detail = { budget: counter.budget, metric: counter.metric, limit: counter.limit }
  if (counter.resetsAt === undefined) {
    return new KeyvaletError('budget_exhausted', { message: `This task has used up the ${counter.metric} of its budget ${counter.budget}.`, detail })
  }
  return new KeyvaletError('rate_limited', {
    message: `This task is over the ${counter.metric} rate of its budget ${counter.budget}; retry after the time Retry-After gives.`,
    detail: { ...detail, resets_at: new Date(counter.resetsAt).toISOString() },
    retryAfterSeconds: Math.max(1, Math.ceil((counter.resetsAt - now) / 1000)),
  })
}
