import type { Budgets } from '../../budgets/budgets.ts'
import type { Budget } from '../../model/budget.ts'
import { KeyvaletError } from '../../errors.ts'
import type { AdmittedContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'

/**
 * budget: after decide (a refused request spends nothing) and before credential (nothing is
 * fetched for a request that will not go). Spends from every budget that applies to the request
 * and the session's own, or refuses with rate_limited (Retry-After) or budget_exhausted; the
 * handler charges what the exchange used once it is over (ctx.budget). `configured`: the budgets
 * that may apply to this connector's requests; a session without a budget of its own, on a
 * connector none applies to, costs one check and no promise.
 */
export function createBudget(budgets: Budgets, configured: readonly Budget[], clock: () => number): Stage {
  return {
    name: 'budget',
    run(ctx) {
      if (configured.length === 0 && ctx.session.budget === undefined) return
      return admit(budgets, configured, ctx, clock())
    },
  }
}

/**
 * A refusal by a budget with `approval` (a soft limit) is not enforced: the request is admitted
 * against the other budgets, and approve (next but two) parks it for a person's yes, naming that
 * budget (ctx.overBudget). A second soft budget over its limit is passed the same way.
 */
async function admit(budgets: Budgets, configured: readonly Budget[], ctx: AdmittedContext, now: number): Promise<void> {
  const rule = ctx.decision?.effect === 'allow' ? ctx.decision.rule.id : ctx.mcp?.rule
  let applying = configured
  for (;;) {
    try {
      ctx.budget = await budgets.admit(ctx.session, applying, rule, now)
      return
    } catch (err) {
      const name = err instanceof KeyvaletError ? err.detail?.budget : undefined
      const soft = applying.find((b) => b.name === name && b.approval !== undefined)
      if (soft?.approval === undefined) throw err
      ctx.overBudget ??= { budget: soft.name, options: soft.approval }
      applying = applying.filter((b) => b !== soft)
    }
  }
}
