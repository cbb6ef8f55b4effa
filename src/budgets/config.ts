/** The `budgets` block (top level) and a connector's `usage` block: their schemas (merged into config/schema.ts) and compile steps. */

import Type, { type Static } from 'typebox'
import { DURATION_PATTERN, durationMs } from '../duration.ts'
import { BUDGET_METRICS, COST_UNITS_PER_CURRENCY, type Budget, type BudgetMetric, type UsageOptions } from '../model/budget.ts'
import type { Policy } from '../model/policy.ts'
import { Defaulted, NamedMap } from '../schema-kit/builders.ts'
import { APPROVAL_BLOCK, compileApproval } from '../approvals/config.ts'
import type { FieldPath } from '../schema-kit/field-path.ts'
import { CONNECTOR_NAME, RULE_ID } from '../schema-kit/patterns.ts'

const count = (description: string) => Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description }))

const BUDGET_SCHEMA = Type.Object({
  per: Defaulted(Type.Enum(['session', 'agent', 'user', 'workspace'], {
    default: 'session',
    description: "Whose requests count together: each session's on its own, or all sessions' of one agent, user or workspace (every keyvalet instance on the store shares the counters). Default session.",
  })),
  connector: Type.Optional(Type.String({ pattern: CONNECTOR_NAME, description: 'Only requests to this connector count; default every connector.' })),
  rule: Type.Optional(Type.String({ pattern: RULE_ID, description: 'Only requests this rule of `connector` allowed count.' })),
  window: Type.Optional(Type.String({
    pattern: DURATION_PATTERN,
    errorMessage: 'must be a whole number and a unit: s, m, h or d (e.g. 1m)',
    description: 'The limits hold per fixed window of this length (a rate: over it, 429 rate_limited with Retry-After until the window ends). Without it, over the session\'s life (over it, 429 budget_exhausted); only `per: session` may leave it out.',
  })),
  requests: count('Requests forwarded. Spent before the request goes, atomically across instances: the request that would go over is refused and never reaches the upstream.'),
  bytes_up: count('Request body bytes sent upstream. Charged when the exchange ends; a request is refused once the total has reached the limit (the one that crosses it completes).'),
  bytes_down: count('Response body bytes relayed to the sandbox. Charged like bytes_up.'),
  tokens: count("Model tokens (input + output) the upstream reported in its responses' usage, on connectors with a `usage` block. Charged like bytes_up."),
  approval: Type.Optional(Type.Object(APPROVAL_BLOCK.properties, {
    additionalProperties: false,
    description: "A soft limit: a request over it is not refused but waits for a person's yes (as a rule's `approval`; docs/approvals.md); approved, it goes without spending from this budget. Default: refused.",
  })),
  cost: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "Model cost, in the currency of the connectors' `usage.prices`, from the reported usage. Charged like bytes_up." })),
}, { additionalProperties: false, description: 'One budget: who counts together, which requests count, over which window, and at least one limit.' })

export const BUDGETS_BLOCK = Defaulted(NamedMap(BUDGET_SCHEMA, {
  default: {},
  propertyNames: { pattern: RULE_ID, errorMessage: 'budget names must match ^[a-z0-9][a-z0-9_.-]{0,62}$' },
  description: 'Budgets and rate limits by name, checked after the policy allowed a request (a refused request spends nothing). A request counts against every budget that applies to it. A per-session request budget can also be given to one session (`session create --budget N`).',
}))

/** The `budgets` block → budgets; names must exist in `policy`. */
export function compileBudgets(raw: Static<typeof BUDGETS_BLOCK>, policy: Policy, idleTimeoutMs: number, problem: (f: FieldPath, m: string) => void): Budget[] {
  return Object.entries(raw).map(([name, entry]) => {
    const at = (field: string): FieldPath => [name, field]
    const connector = entry.connector === undefined ? undefined : policy.connectors.get(entry.connector)
    if (entry.connector !== undefined && connector === undefined) problem(at('connector'), `no connector ${entry.connector} is configured`)
    if (entry.rule !== undefined) {
      if (entry.connector === undefined) problem(at('rule'), 'a rule is named within its connector: set connector too')
      else if (connector !== undefined && !connector.rules.some((r) => r.id === entry.rule)) problem(at('rule'), `connector ${entry.connector} has no rule ${entry.rule}`)
    }
    const windowMs = entry.window === undefined ? undefined : durationMs(entry.window)
    if (windowMs === 0) problem(at('window'), 'must be longer than 0')
    if (windowMs === undefined && entry.per !== 'session') problem(at('window'), `a budget per ${entry.per} outlives any one session: give it a window (e.g. 1h, 1d)`)
    const limits: Partial<Record<BudgetMetric, number>> = {}
    for (const metric of BUDGET_METRICS) {
      const value = entry[metric]
      if (value !== undefined) limits[metric] = metric === 'cost' ? Math.round(value * COST_UNITS_PER_CURRENCY) : value
    }
    if (Object.keys(limits).length === 0) problem([name], `needs at least one limit: ${BUDGET_METRICS.join(', ')}`)
    const approval = entry.approval === undefined ? undefined : compileApproval(entry.approval, idleTimeoutMs, (f, m) => problem([name, 'approval', ...f], m))
    return { name, per: entry.per, connector: entry.connector, rule: entry.rule, windowMs, limits, ...(approval === undefined ? {} : { approval }) }
  })
}

const PRICE = Type.Object({
  input: Type.Number({ minimum: 0, description: 'Per million input tokens (prompt, cache reads and writes included).' }),
  output: Type.Number({ minimum: 0, description: 'Per million output tokens.' }),
}, { additionalProperties: false, description: 'A price in one currency, per million tokens.' })

export const USAGE_BLOCK = Type.Object({
  prices: Defaulted(NamedMap(PRICE, {
    default: {},
    description: "Model name (or a prefix of it: the longest matching one applies) → price, for the `cost` of budgets. A model with no price here is priced at the highest input and output prices given, so an unknown model never costs nothing.",
  })),
}, {
  additionalProperties: false,
  description: "The upstream is a model provider: keyvalet reads the token `usage` its responses report (OpenAI chat completions and responses, Anthropic messages; JSON and server-sent event streams, read as they pass) for the audit record and the `tokens` and `cost` budgets. A streamed OpenAI chat completion reports usage only when the request sets stream_options.include_usage.",
})

export function compileUsage(raw: Static<typeof USAGE_BLOCK>): UsageOptions {
  return { prices: new Map(Object.entries(raw.prices)) }
}
