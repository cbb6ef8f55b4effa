import type { NotReplayable } from './facts.ts'
import { CHANGES, type Change, type Outcome, type ReplayReport } from './replay.ts'

const CHANGE_TITLE: Record<Change, string> = {
  allowed_to_denied: 'allowed -> denied',
  denied_to_allowed: 'denied -> allowed',
  different_rule: 'different rule',
}

/** Why a record is not replayable, in words: printed under the table, and in docs/budgets.md. */
export const NOT_REPLAYABLE_WHY: Record<NotReplayable, string> = {
  recorded_before_replay: 'recorded before keyvalet recorded what a decision needs (no decided_on)',
  mcp: "an MCP endpoint: each JSON-RPC message is decided by tool, prompt and resource rules, and the audit holds arguments as digests only",
  body: 'a rule decide reaches checks the body against a JSON Schema that reads parts of it the audit did not record (a field no schema read then, a value over 1 KiB or under a secret-bearing name)',
  query_value: 'a rule decide reaches checks a query parameter value, and the audit holds query names only',
  query_names_cut: "the record's query names were cut short (at most 50, of 64 characters)",
  header_names_cut: "the record's header names were cut short (at most 64, of 64 characters) and a rule or the connector's header guard looks at them",
  header_value: 'a rule decide reaches checks a header value the audit did not record (secret-bearing, repeated, over 256 characters, or named by no rule then)',
}

export const NOT_REPLAYED = 'Only the HTTP policy is decided again. Not replayed: budgets and rate limits (counters as they were then are not kept), the egress address check, credentials and upstream answers.'

export function replayText(report: ReplayReport, configFile: string, version: string): string {
  const lines = [`replay of ${report.records} request records under ${configFile} (${version})`, '']
  const rows: [string, number][] = [
    ...CHANGES.map((c): [string, number] => [CHANGE_TITLE[c], report.changes[c].count]),
    ['unchanged', report.unchanged],
    ['not replayable', report.not_replayable.count],
    ['not decided by the policy', report.not_decided_by_policy],
  ]
  lines.push(`  ${'change'.padEnd(26)} ${'count'.padStart(8)}`)
  for (const [title, count] of rows) lines.push(`  ${title.padEnd(26)} ${String(count).padStart(8)}`)
  for (const change of CHANGES) {
    const { count, examples } = report.changes[change]
    if (count === 0) continue
    lines.push('', `${CHANGE_TITLE[change]} (${count}), e.g.:`)
    for (const e of examples) lines.push(`  #${e.seq} ${e.time} ${e.method} ${e.connector} ${e.path ?? '-'}: ${outcome(e.before)} -> ${outcome(e.after)}`)
  }
  const reasons = Object.entries(report.not_replayable.reasons) as [NotReplayable, number][]
  if (reasons.length > 0) {
    lines.push('', 'not replayable, counted rather than guessed:')
    for (const [reason, count] of reasons) lines.push(`  ${String(count).padStart(8)}  ${reason}: ${NOT_REPLAYABLE_WHY[reason]}`)
  }
  if (report.not_decided_by_policy > 0) lines.push('', `not decided by the policy: ${report.not_decided_by_policy} (refused before it: authentication, routing, a malformed request)`)
  lines.push('', NOT_REPLAYED)
  return lines.join('\n')
}

function outcome(o: Outcome): string {
  return o.decision === 'allow' ? `allow ${o.rule}` : `${o.decision} ${o.reason}${o.rule === null ? '' : ` (${o.rule})`}`
}
