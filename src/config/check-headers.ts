/**
 * What the rules of a connector with a header guard (aws_sigv4: src/credentials/aws-headers.ts)
 * let through of the headers the upstream acts on: a warning for a guarded header named without a
 * pattern (any value then passes), and, for `keyvalet check`, a note per write rule.
 */

import { severityRank, type Connector, type Policy, type Rule, type ValueConstraint } from '../model/policy.ts'

/** Guarded headers the rule names with no pattern: [header, what it does]. */
export function unpatternedGuardedHeaders(connector: Connector, rule: Rule): [string, string][] {
  const guard = connector.headerGuard
  if (guard === undefined) return []
  return rule.headers.flatMap((c) => {
    const does = guard.guarded(c.name)
    return does === undefined || c.pattern !== undefined ? [] : [[c.name, does] as [string, string]]
  })
}

export interface RuleNote {
  readonly path: string
  readonly message: string
}

/**
 * One note per guarded connector (what is refused unless named), then one per rule of severity
 * write or above: which guarded headers it lets through, and with which values.
 */
export function guardedHeaderNotes(policy: Policy): RuleNote[] {
  const notes: RuleNote[] = []
  for (const connector of policy.connectors.values()) {
    const guard = connector.headerGuard
    if (guard === undefined) continue
    const others = guard.others === '' ? '' : `, and ${guard.others},`
    notes.push({ path: `connectors.${connector.name}`, message: `requests carrying ${guard.names.join(', ')}${others} are refused unless the rule that allows them names the header` })
    connector.rules.forEach((rule, i) => {
      if (severityRank(rule.severity) < severityRank('write')) return
      const named = rule.headers.filter((c) => guard.guarded(c.name) !== undefined)
      const what = `rule ${rule.id} (${rule.severity}: ${[...rule.methods].join(', ')} ${rule.paths.map((p) => p.source).join(', ')})`
      const message = named.length === 0
        ? `${what} lets through none of these headers`
        : `${what} lets through ${named.map(describe).join('; ')}; none of the other headers`
      notes.push({ path: `connectors.${connector.name}.rules[${i}]`, message })
    })
  }
  return notes
}

function describe(c: ValueConstraint): string {
  const values = c.pattern === undefined ? 'with any value' : `matching ${c.pattern.source.replace(/^\^\(\?:([\s\S]*)\)\$$/, '$1')}`
  return `${c.name} ${values}${c.required ? ' (required)' : ''}`
}
