/**
 * Replay: every recorded request decided again under another configuration, compared with what
 * was decided then. Pure: records in, a report out (the CLI reads the audit page by page).
 *
 * What is compared is the HTTP policy's decision (policy/decide.ts): allowed (by which rule) or
 * refused. A record states it: `allow`, and an error after the policy allowed, name the rule that
 * allowed; `deny` with a policy reason and `would_deny` are the policy's refusals. A record the
 * policy never decided (refused before it: authentication, routing, a parser; the admin API's) is
 * counted apart. A record that cannot be decided again exactly (facts.ts) is counted as not
 * replayable, by reason, never guessed. Budgets, rate limits, the egress address check,
 * credentials and the upstream's answers are not replayed: they depend on state at the time.
 */
import type { AuditRecord } from '../audit/record.ts'
import type { Policy } from '../model/policy.ts'
import type { DenyReason } from '../policy/decision.ts'
import { decideWithRecordedBody, replayArgs, type NotReplayable } from './facts.ts'

export type Change = 'allowed_to_denied' | 'denied_to_allowed' | 'different_rule'
export const CHANGES: readonly Change[] = ['allowed_to_denied', 'denied_to_allowed', 'different_rule']

export interface Outcome {
  /** would_deny: refused by the policy, forwarded under report mode. */
  readonly decision: 'allow' | 'deny' | 'would_deny'
  readonly reason: string
  readonly rule: string | null
}

export interface ReplayExample {
  readonly seq: number
  readonly time: string
  readonly method: string
  readonly connector: string
  readonly path: string | null
  readonly before: Outcome
  readonly after: Outcome
}

export interface ReplayReport {
  /** Request records read (closing or whole records of the gateway and forward listeners, in the time window). */
  records: number
  /** Decided again, changed or not. */
  replayed: number
  unchanged: number
  changes: Record<Change, { count: number; examples: ReplayExample[] }>
  not_replayable: { count: number; reasons: Partial<Record<NotReplayable, number>> }
  /** Refused before the policy decided (authentication, routing, a malformed request). */
  not_decided_by_policy: number
}

const DENY_REASONS: ReadonlySet<string> = new Set<DenyReason>([
  'no_rule_for_path', 'method_not_allowed', 'not_in_grant', 'severity_exceeds_grant', 'query_not_allowed',
  'header_not_allowed', 'header_not_named', 'body_not_allowed', 'upgrade_not_allowed', 'body_unexpected',
])
const EXAMPLES = 5

export class Replay {
  readonly #policy: Policy
  readonly report: ReplayReport = {
    records: 0, replayed: 0, unchanged: 0,
    changes: { allowed_to_denied: { count: 0, examples: [] }, denied_to_allowed: { count: 0, examples: [] }, different_rule: { count: 0, examples: [] } },
    not_replayable: { count: 0, reasons: {} },
    not_decided_by_policy: 0,
  }

  constructor(policy: Policy) {
    this.#policy = policy
  }

  add(record: AuditRecord): void {
    if ((record.mode !== 'gateway' && record.mode !== 'forward') || record.phase === 'open') return
    const report = this.report
    report.records++
    const before = recordedOutcome(record)
    if (before === undefined || record.connector === null) {
      report.not_decided_by_policy++
      return
    }
    const after = this.#decideAgain(record)
    if ('notReplayable' in after) {
      report.not_replayable.count++
      report.not_replayable.reasons[after.notReplayable] = (report.not_replayable.reasons[after.notReplayable] ?? 0) + 1
      return
    }
    report.replayed++
    const change = changeOf(before, after)
    if (change === undefined) {
      report.unchanged++
      return
    }
    const entry = report.changes[change]
    entry.count++
    if (entry.examples.length < EXAMPLES) entry.examples.push({ seq: record.seq, time: record.time, method: record.method, connector: record.connector, path: record.path, before, after })
  }

  #decideAgain(record: AuditRecord): Outcome | { notReplayable: NotReplayable } {
    if (record.mcp !== undefined) return { notReplayable: 'mcp' }
    const on = record.decided_on
    if (on === undefined) return { notReplayable: 'recorded_before_replay' }
    const connector = this.#policy.connectors.get(record.connector ?? '')
    if (connector === undefined) return { decision: 'deny', reason: 'connector_unknown', rule: null }
    if (connector.mcp?.endpoints.some((e) => e.match(on.segments)) === true) return { notReplayable: 'mcp' }
    const built = replayArgs(record, on, connector)
    if ('notReplayable' in built) return built
    const decision = decideWithRecordedBody(built.args, built.body)
    if (decision.effect === 'allow') return { decision: 'allow', reason: decision.reason, rule: decision.rule.id }
    const report = decision.reason !== 'body_unexpected' && (decision.rule?.report === true || connector.report === true)
    return { decision: report ? 'would_deny' : 'deny', reason: decision.reason, rule: decision.rule?.id ?? null }
  }
}

/** What the policy decided then, from the record; undefined when the policy never decided it. */
export function recordedOutcome(record: AuditRecord): Outcome | undefined {
  if (record.decision === 'would_deny') return { decision: 'would_deny', reason: record.reason, rule: record.rule }
  if (record.decision === 'deny' && DENY_REASONS.has(record.reason)) return { decision: 'deny', reason: record.reason, rule: record.rule }
  // Allowed, or failed after the policy allowed (a budget, the credential, the upstream): the record names the rule that allowed.
  if (record.rule !== null && record.mcp === undefined) return { decision: 'allow', reason: 'rule_matched', rule: record.rule }
  if (record.mcp !== undefined) return { decision: record.decision === 'allow' ? 'allow' : 'deny', reason: record.reason, rule: record.rule }
  return undefined
}

function changeOf(before: Outcome, after: Outcome): Change | undefined {
  const allowedBefore = before.decision === 'allow'
  const allowedAfter = after.decision === 'allow'
  if (allowedBefore && !allowedAfter) return 'allowed_to_denied'
  if (!allowedBefore && allowedAfter) return 'denied_to_allowed'
  if (allowedBefore && allowedAfter && before.rule !== after.rule) return 'different_rule'
  return undefined
}
