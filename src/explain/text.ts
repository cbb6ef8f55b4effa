import type { Explanation } from './explain.ts'

/** An explanation as the lines `keyvalet explain` prints, one step each. */
export function explanationText(e: Explanation, method: string, url: string): string {
  const lines = [`${method} ${url}`]
  if (e.connector === null) {
    lines.push(`  connector: none (${e.detail})`, `  decision:  deny ${e.reason} (answered ${e.code})`)
    return lines.join('\n')
  }
  lines.push(`  connector: ${e.connector}, by the ${e.via === 'gateway_path' ? "gateway path's first segment" : "forward request's origin and the upstream's base path"}; path below it ${e.path}`)
  if (e.mcp !== undefined) {
    lines.push("  MCP endpoint: each JSON-RPC message decided by the connector's tool, prompt, resource and method rules:")
    for (const m of e.mcp) lines.push(`    ${m.method}${m.item === null ? '' : ` ${JSON.stringify(m.item)}`}: ${m.decision} ${m.reason}${m.rule === null ? '' : ` (rule ${m.rule})`}; ${m.detail}`)
    if (e.mcp.length === 0) lines.push('    (refused before any message)')
  } else lines.push('  rules, in order:')
  for (const step of e.rules) {
    const mark = step.outcome === 'allow' ? 'fits' : step.outcome === 'path' || step.outcome === 'method' ? `not for this ${step.outcome}` : `refuses: ${step.outcome}`
    const chosen = step.rule === e.rule ? '  <- decides' : ''
    lines.push(`    ${step.rule} (${step.severity}${step.mode === 'report' ? ', report mode' : ''}): ${mark}; ${step.detail}${chosen}`)
  }
  if (e.rules.length === 0 && e.mcp === undefined) lines.push('    (none)')
  if (e.egress !== undefined && e.egress.verdict !== 'resolved_when_sent') lines.push(`  egress:    ${e.egress.detail}`)
  lines.push(`  severity:  needed ${e.severity.needed ?? '-'}, granted ${e.severity.granted ?? 'nothing on this connector'}`)
  lines.push(`  decision:  ${e.decision} ${e.reason}${e.rule === null ? '' : ` (rule ${e.rule})`}: ${e.detail}`)
  const outcome = e.code !== null ? `refused with ${e.code}` : e.decision === 'allow' ? 'forwarded' : 'forwarded anyway: report mode, audited as would_deny'
  lines.push(`  outcome:   ${outcome}`)
  if (e.not_evaluated.length > 0) {
    lines.push('  not evaluated here (a real request also goes through these):')
    for (const item of e.not_evaluated) lines.push(`    - ${item}`)
  }
  return lines.join('\n')
}
