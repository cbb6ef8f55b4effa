/**
 * Grants as written on the CLI and in session requests: `connector:severity[:rule1,rule2][+approval[=DURATION]]`.
 *   github:read                 every github rule of severity read
 *   github:write:create-issue   only the rule create-issue, provided its severity is at most write
 *   github:write+approval       every github rule up to write, each request only after a person's yes
 *   github:write+approval=10m   the same, each request waiting at most 10 minutes for it
 */

import { durationMs } from '../duration.ts'
import { OperatorError } from '../errors.ts'
import { SEVERITIES, severityRank, type Grant, type GrantApproval, type Policy, type Severity } from '../model/policy.ts'

/** Same shapes as the config loader enforces for connector names and rule ids. */
const CONNECTOR_NAME = /^[a-z][a-z0-9-]{0,62}$/
const RULE_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/

const HINT =
  'write a grant as connector:severity or connector:severity:rule1,rule2, with +approval or +approval=DURATION ' +
  `after it for a person's yes on each request (severity: ${SEVERITIES.join(', ')}), e.g. github:read, github:write:create-issue or github:write+approval=5m`

/** How long a request allowed by a `+approval` grant waits for a decision unless the grant says: the default of a rule's `approval.timeout`. */
export const GRANT_APPROVAL_TIMEOUT_MS = 120_000

/** Bounds of `+approval=DURATION`, as a rule's `approval.timeout` has. */
const APPROVAL_TIMEOUT_MS = { min: 1000, max: 3_600_000 }

const APPROVAL_SUFFIX = '+approval'

export function parseGrant(text: string): Grant {
  function fail(why: string): never {
    throw new OperatorError(`invalid grant ${JSON.stringify(text)}: ${why}`, HINT)
  }
  const trimmed = text.trim()
  const plus = trimmed.indexOf('+')
  const approval = plus === -1 ? undefined : parseApproval(trimmed.slice(plus), fail)
  const parts = (plus === -1 ? trimmed : trimmed.slice(0, plus)).split(':')
  if (parts.length < 2 || parts.length > 3) fail('expected two or three parts separated by ":"')
  const [connector = '', severity = '', ruleList] = parts
  if (!CONNECTOR_NAME.test(connector)) fail(`${JSON.stringify(connector)} is not a connector name`)
  if (!isSeverity(severity)) fail(`severity must be one of ${SEVERITIES.join(', ')}`)
  const withApproval = approval === undefined ? {} : { approval }
  if (ruleList === undefined) return { connector, maxSeverity: severity, rules: undefined, ...withApproval }
  const rules = ruleList.split(',')
  for (const id of rules) if (!RULE_ID.test(id)) fail(`${JSON.stringify(id)} is not a rule id`)
  if (new Set(rules).size !== rules.length) fail('a rule is listed twice')
  return { connector, maxSeverity: severity, rules, ...withApproval }
}

/** `+approval` or `+approval=DURATION` (whole s, m or h; 1s to 1h). */
function parseApproval(suffix: string, fail: (why: string) => never): GrantApproval {
  if (suffix === APPROVAL_SUFFIX) return {}
  if (!suffix.startsWith(`${APPROVAL_SUFFIX}=`)) fail(`after "+" only approval or approval=DURATION may follow (e.g. +approval=5m)`)
  const text = suffix.slice(APPROVAL_SUFFIX.length + 1)
  const ms = /^[0-9]{1,9}[smh]$/.test(text) ? durationMs(text) : undefined
  if (ms === undefined) fail(`${JSON.stringify(text)} is not a duration: a whole number and s, m or h`)
  if (ms < APPROVAL_TIMEOUT_MS.min || ms > APPROVAL_TIMEOUT_MS.max) fail('an approval waits at least 1s and at most 1h')
  return { timeoutMs: ms }
}

/** Inverse of parseGrant (a duration in seconds). A grant with an empty rule list (it grants nothing) prints with a trailing ':'. */
export function formatGrant(g: Grant): string {
  const base = `${g.connector}:${g.maxSeverity}`
  const scoped = g.rules === undefined ? base : `${base}:${g.rules.join(',')}`
  if (g.approval === undefined) return scoped
  return g.approval.timeoutMs === undefined ? `${scoped}${APPROVAL_SUFFIX}` : `${scoped}${APPROVAL_SUFFIX}=${g.approval.timeoutMs / 1000}s`
}

/** Whether the grant lets a request through a rule of a connector: the connector, the rule if it names rules, the severity. */
export function grantCovers(grant: Grant, connector: string, rule: { readonly id: string; readonly severity: Severity }): boolean {
  if (grant.connector !== connector) return false
  if (grant.rules !== undefined && !grant.rules.includes(rule.id)) return false
  return severityRank(rule.severity) <= severityRank(grant.maxSeverity)
}

/**
 * The approval a request allowed through `rule` needs because of the session's grants. Grants add
 * up, so the request waits for a person only when every grant covering the rule says
 * `+approval`; then it waits as long as the first of them says. Undefined when a grant covering
 * the rule needs no approval (or none covers it: decide refused it already).
 */
export function grantApproval(grants: readonly Grant[], connector: string, rule: { readonly id: string; readonly severity: Severity }): GrantApproval | undefined {
  let first: GrantApproval | undefined
  for (const grant of grants) {
    if (!grantCovers(grant, connector, rule)) continue
    if (grant.approval === undefined) return undefined
    first ??= grant.approval
  }
  return first
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
    // The signature made after the yes rewrites headers the approval covers (as config/compile.ts refuses a rule's approval there).
    if (grant.approval !== undefined && connector.credential?.kind === 'aws_sigv4') {
      problems.push(`${label}: connector ${connector.name} signs its requests with aws_sigv4, after an approval would be given, so its grants cannot ask for approval`)
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
