/** Budgets and rate limits: what is counted, for whom, over which stretch of time. */

import type { ApprovalOptions } from './approval.ts'

/** Whose requests a budget counts together: one session's, or every session's of one agent, user or workspace. */
export type BudgetSubject = 'session' | 'agent' | 'user' | 'workspace'

/**
 * What a budget counts. `requests` is spent before the request goes (exact: the request that
 * would go over is refused); the others are known only once the exchange is over, so they are
 * charged then, and a request is refused once the total has reached the limit.
 */
export type BudgetMetric = 'requests' | 'bytes_up' | 'bytes_down' | 'tokens' | 'cost'
export const BUDGET_METRICS: readonly BudgetMetric[] = ['requests', 'bytes_up', 'bytes_down', 'tokens', 'cost']

/** Cost is counted in millionths of the price's currency, so counters stay integers. */
export const COST_UNITS_PER_CURRENCY = 1_000_000

export interface Budget {
  /** Its name in the config (`budgets.<name>`), in counter keys, refusals and `session show`. */
  readonly name: string
  readonly per: BudgetSubject
  /** Only requests to this connector count (undefined: every connector). */
  readonly connector: string | undefined
  /** Only requests this rule of `connector` allowed count (undefined: every rule). */
  readonly rule: string | undefined
  /**
   * A fixed window: the limits hold per window (a rate; over it → rate_limited, with Retry-After
   * until the window ends). Undefined: over the session's life (over it → budget_exhausted).
   */
  readonly windowMs: number | undefined
  /** metric → limit; cost in COST_UNITS_PER_CURRENCY. At least one. */
  readonly limits: Readonly<Partial<Record<BudgetMetric, number>>>
  /** A soft limit: over it, a request waits for a person's yes instead of being refused (src/approvals/). */
  readonly approval?: ApprovalOptions | undefined
}

/** Prices of a model provider's tokens, in currency per million tokens. */
export interface TokenPrice {
  readonly input: number
  readonly output: number
}

/** A connector whose responses carry model `usage` (OpenAI chat/responses, Anthropic messages). */
export interface UsageOptions {
  /** Model name (or a prefix of it, the longest one wins) → price; a model with none is priced at the highest given. */
  readonly prices: ReadonlyMap<string, TokenPrice>
}
