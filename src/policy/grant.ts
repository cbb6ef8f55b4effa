/**
 * Grants as written on the CLI and in session requests: `connector:severity[:rule1,rule2]`.
 *   github:read                 every github rule of severity read
 *   github:write:create-issue   only the rule create-issue, provided its severity is at most write
 */

import { OperatorError } from '../errors.ts'
import { SEVERITIES, severityRank, type Grant, type Policy, type Severity } from '../model/policy.ts'

/** Same shapes as the config loader enforces for connector names and rule ids. */
const CONNECTOR_NAME = /^[a-z][a-z0-9-]{0,62}$/
const RULE_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/

const HINT =
  'write a grant as connector:severity or connector:severity:rule1,rule2 ' +
  `(severity: ${SEVERITIES.join(', ')}), e.g. github:read or github:write:create-issue`

export function parseGrant(text: string): Grant {
  function fail(why: string): never {
    throw new OperatorError(`invalid grant ${JSON.stringify(text)}: ${why}`, HINT)
  }
  const parts = text.trim().split(':')
  if (parts.length < 2 || parts.length > 3) fail('expected two or three parts separated by ":"')
  const [connector = '', severity = '', ruleList] = parts
  if (!CONNECTOR_NAME.test(connector)) fail(`${JSON.stringify(connector)} is not a connector name`)
  if (!isSeverity(severity)) fail(`severity must be one of ${SEVERITIES.join(', ')}`)
  if (ruleList === undefined) return { connector, maxSeverity: severity, rules: undefined }
  const rules = ruleList.split(',')
  for (const id of rules) if (!RULE_ID.test(id)) fail(`${JSON.stringify(id)} is not a rule id`)
  if (new Set(rules).size !== rules.length) fail('a rule is listed twice')
  return { connector, maxSeverity: severity, rules }
}

/** Inverse of parseGrant. A grant with an empty rule list (it grants nothing) prints with a trailing ':'. */
export function formatGrant(g: Grant): string {
  const base = `${g.connector}:${g.maxSeverity}`
  return g.rules === undefined ? base : `${base}:${g.rules.join(',')}`
}

/** Problems that make a grant useless or wrong for this policy, one message each; [] when all is well. */
export function checkGrantsAgainstPolicy(grants: readonly Grant[], policy: Policy): string[] {
  const problems: string[] = []
  for (const grant of grants) {
    const label = `grant ${formatGrant(grant)}`
    const connector = policy.connectors.get(grant.connector)
    if (connector === undefined) {
      problems.push(`${label}: no connector named ${grant.connector} is configured`)
      continue
    }
    // An MCP connector's tool, prompt and resource rules are named in grants like its HTTP rules.
    const mcp = connector.mcp
    const rules: readonly { readonly id: string; readonly severity: Severity }[] = mcp === undefined ? connector.rules : [...connector.rules, ...mcp.tools, ...mcp.prompts, ...mcp.resources]
    if (grant.rules === undefined) {
      const covered = rules.some((r) => severityRank(r.severity) <= severityRank(grant.maxSeverity)) || (mcp?.trustAnnotations === true)
      if (!covered) problems.push(`${label}: connector ${connector.name} has no rule at severity ${grant.maxSeverity} or below`)
      continue
    }
    if (grant.rules.length === 0) problems.push(`${label}: the rule list is empty, so it grants nothing`)
    for (const id of grant.rules) {
      const rule = rules.find((r) => r.id === id)
      if (rule === undefined) {
        problems.push(`${label}: connector ${connector.name} has no rule ${id}`)
      } else if (severityRank(rule.severity) > severityRank(grant.maxSeverity)) {
        problems.push(`${label}: rule ${id} is ${rule.severity}, above the grant's ${grant.maxSeverity}`)
      }
    }
  }
  return problems
}

function isSeverity(s: string): s is Severity {
  return (SEVERITIES as readonly string[]).includes(s)
}
