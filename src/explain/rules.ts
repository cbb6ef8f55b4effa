/**
 * Each rule's part in a decision: decide (policy/decide.ts) over a connector holding that rule
 * alone. decide tries a rule's checks in a fixed order and reports the first one it fails, so
 * this is the real decision function's answer for the rule, not a second implementation of it:
 * a path or method the rule does not list comes back as no_rule_for_path or method_not_allowed,
 * any other failure as its own reason, and a rule that passes every check as allow.
 */
import type { Severity } from '../model/policy.ts'
import { decide } from '../policy/decide.ts'
import type { BodyFacts, DecideArgs, Decision, DenyReason } from '../policy/decision.ts'

export interface RuleStep {
  readonly rule: string
  readonly severity: Severity
  readonly mode: 'enforce' | 'report'
  /** allow: the rule fits the request and the grant covers it; path or method: it does not apply; else the first check it fails. */
  readonly outcome: 'allow' | 'path' | 'method' | Exclude<DenyReason, 'no_rule_for_path' | 'method_not_allowed'>
  readonly detail: string
}

export function ruleSteps(args: DecideArgs, body: BodyFacts): RuleStep[] {
  return args.connector.rules.map((rule) => {
    const step = { rule: rule.id, severity: rule.severity, mode: rule.report === true ? 'report' as const : 'enforce' as const }
    const decision = decideWithBody({ ...args, connector: { ...args.connector, rules: [rule] } }, body)
    if (decision.effect === 'allow') return { ...step, outcome: 'allow', detail: decision.detail }
    if (decision.reason === 'no_rule_for_path') return { ...step, outcome: 'path', detail: `its path ${rule.paths.map((p) => p.source).join(', ')} does not match` }
    if (decision.reason === 'method_not_allowed') return { ...step, outcome: 'method', detail: `its methods ${[...rule.methods].join(', ')} do not include ${JSON.stringify(args.method.slice(0, 32))}` }
    return { ...step, outcome: decision.reason, detail: decision.detail }
  })
}

/** decide, given the body when it asks for it (as the decide stage reads it). */
export function decideWithBody(args: DecideArgs, body: BodyFacts): Exclude<Decision, { effect: 'need_body' }> {
  let decision = decide(args)
  if (decision.effect === 'need_body') decision = decide({ ...args, body })
  if (decision.effect === 'need_body') throw new Error('decide asked for the body twice')
  return decision
}
