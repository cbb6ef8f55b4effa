import type { Budget } from '../model/budget.ts'
import type { Connector } from '../model/policy.ts'
import type { Egress } from './egress.ts'

/**
 * What a real request also goes through that explain does not evaluate, in words for the
 * operator. `allowedBy`: the rule the request would be forwarded under (null: none named), or
 * undefined when it is refused (then budgets never run).
 */
export function notEvaluated(connector: Connector, segments: readonly string[], allowedBy: string | null | undefined, budgets: readonly Budget[], egress: Egress): string[] {
  const out: string[] = []
  if (connector.mcp?.trustAnnotations === true && connector.mcp.endpoints.some((e) => e.match(segments))) {
    out.push(`MCP annotations: a tool without a rule that the server's trusted annotations would allow is refused here; keyvalet learns annotations from the server's tools/list answers, which explain does not ask for`)
  }
  if (allowedBy !== undefined) {
    const applying = budgets.filter((b) => (b.connector === undefined || b.connector === connector.name) && (b.rule === undefined || b.rule === allowedBy)).map((b) => b.name)
    const named = applying.length === 0 ? 'no configured budget applies' : `budgets ${applying.join(', ')} apply`
    out.push(`budgets and rate limits: ${named}, and a session may have a request budget of its own; their counters live in the store and are not read (over a limit: 429 budget_exhausted or rate_limited)`)
  }
  if (egress.verdict === 'resolved_when_sent') out.push(`the egress address check: the addresses ${connector.upstream.hostname} resolves to when a request is sent, against the egress policy and allow_addresses (upstream_address_refused)`)
  out.push('the values a real request carries beside the policy: a task key or placeholder outside its slot, framing and hop-by-hop headers, the credential itself')
  return out
}
