/**
 * The policy decision: pure (no I/O, no clock), deny by default.
 *
 * Rules are tried in config order. A rule is a candidate when one of its paths matches; of those,
 * the ones listing the method are tried in turn: body presence, upgrade, query and headers (does
 * the rule fit the request? A header the connector guards, such as S3's x-amz-acl, fits only a
 * rule that names it), then the grant (is it covered?), then the body. A GET, HEAD, DELETE or
 * OPTIONS carrying a body fits only a rule that allows one: some frameworks read a body there as
 * the request's real parameters, which the rule never saw. The first rule passing everything
 * allows. Otherwise the deny names the most telling failure seen — body > severity > not in grant
 * > header value > unnamed guarded header or unexpected body > query/upgrade — and the rule it
 * came from: a rule the request fits explains a refusal better than one it does not.
 *
 * A body is asked for (`need_body`) only when a body-constrained rule is reached that the grant,
 * query and headers already allow, so no body is ever read for a request the grant refuses.
 *
 * Details name rules, parameters and headers, never their values (they reach the audit log).
 */

import { severityRank, type BodyValidator, type Connector, type Grant, type Rule, type ValueConstraint } from '../model/policy.ts'
import type { BodyFacts, DecideArgs, Decision, DenyReason } from './decision.ts'
import { normalisePath, splitTarget } from './path.ts'

type Failure = { readonly reason: DenyReason; readonly rule: Rule; readonly detail: string; readonly header?: string }

/** Higher wins when choosing which failure to report. */
const SPECIFICITY: Readonly<Partial<Record<DenyReason, number>>> = {
  // The rule does not fit the request (its query, headers or upgrade differ): the weakest story.
  upgrade_not_allowed: 1,
  query_not_allowed: 1,
  header_not_named: 2,
  body_unexpected: 2,
  // A rule that names the header and refuses its value explains more than one silent about it.
  header_not_allowed: 3,
  // The rule fits the request, but the task's grant does not cover it.
  not_in_grant: 4,
  severity_exceeds_grant: 5,
  // The rule fits and is granted; the body is what is wrong.
  body_not_allowed: 6,
}

export function decide(args: DecideArgs): Decision {
  const { connector, method } = args
  const candidates = connector.rules.filter((r) => r.paths.some((p) => p.match(args.segments)))
  if (candidates.length === 0) {
    return deny('no_rule_for_path', undefined, `no rule of connector ${connector.name} matches the path`)
  }
  const matched = candidates.filter((r) => r.methods.has(method))
  if (matched.length === 0) {
    const allowed = [...new Set(candidates.flatMap((r) => [...r.methods]))].sort().join(', ')
    return deny('method_not_allowed', undefined, `no rule for this path allows ${shortName(method)} (allowed: ${allowed})`)
  }
  let worst: Failure | undefined
  for (const rule of matched) {
    // Whether the rule fits the request is checked before whether the grant covers it, so that a
    // refusal names the rule the request was really aimed at.
    let failure = bodyPresenceFailure(rule, method, args.carriesBody === true) ?? upgradeFailure(rule, args.upgrade) ?? queryFailure(rule, args.query)
      ?? headerFailure(rule, args.headers) ?? unnamedHeaderFailure(rule, connector, args.headers) ?? grantFailure(rule, connector, args.grants)
    if (failure === undefined && rule.body !== undefined) {
      if (args.body === undefined) return { effect: 'need_body' }
      failure = bodyFailure(rule, rule.body, args.body)
    }
    if (failure === undefined) {
      const pattern = rule.paths.find((p) => p.match(args.segments))?.source
      const detail = `rule ${rule.id} (${rule.severity}) matched ${method} ${pattern}`
      return { effect: 'allow', reason: 'rule_matched', rule, detail }
    }
    if (worst === undefined || rank(failure) > rank(worst)) worst = failure
  }
  const { reason, rule, detail, header } = worst as Failure
  return deny(reason, rule, detail, header)
}

/** For tests and the benchmark: DecideArgs for a request target below the connector (may throw path_ambiguous). */
export function argsFor(request: {
  connector: Connector
  grants: readonly Grant[]
  method: string
  target: string
  headers?: Record<string, string | string[] | undefined>
  body?: BodyFacts
  carriesBody?: boolean
}): DecideArgs {
  const { rawPath, rawQuery } = splitTarget(request.target)
  const { segments } = normalisePath(rawPath)
  const { connector, grants, method, headers = {}, body, carriesBody = body !== undefined } = request
  const base = { connector, grants, method, segments, query: new URLSearchParams(rawQuery), headers, carriesBody }
  return body === undefined ? base : { ...base, body }
}

/** Methods whose requests take no body unless their rule says so (RFC 9110 gives a body on them no meaning). */
const BODILESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS'])

function bodyPresenceFailure(rule: Rule, method: string, carriesBody: boolean): Failure | undefined {
  if (!carriesBody || rule.allowBody || !BODILESS.has(method)) return undefined
  return { reason: 'body_unexpected', rule, detail: `rule ${rule.id} takes no body on ${method} (allow_body is not set)` }
}

function grantFailure(rule: Rule, connector: Connector, grants: readonly Grant[]): Failure | undefined {
  let inScope = false
  for (const grant of grants) {
    if (grant.connector !== connector.name) continue
    if (grant.rules !== undefined && !grant.rules.includes(rule.id)) continue
    if (severityRank(rule.severity) <= severityRank(grant.maxSeverity)) return undefined
    inScope = true
  }
  if (inScope) {
    return { reason: 'severity_exceeds_grant', rule, detail: `rule ${rule.id} needs ${rule.severity}, above what the task grant allows` }
  }
  return { reason: 'not_in_grant', rule, detail: `the task grant does not include rule ${rule.id} of connector ${connector.name}` }
}

function upgradeFailure(rule: Rule, upgrade: string | undefined): Failure | undefined {
  if (upgrade === undefined || (upgrade === 'websocket' && rule.websocket)) return undefined
  return { reason: 'upgrade_not_allowed', rule, detail: `rule ${rule.id} does not allow an upgrade to ${shortName(upgrade)}` }
}

function queryFailure(rule: Rule, query: URLSearchParams): Failure | undefined {
  const fail = (detail: string): Failure => ({ reason: 'query_not_allowed', rule, detail: `rule ${rule.id}: ${detail}` })
  for (const c of rule.query) {
    const problem = constraintProblem(c, query.getAll(c.name), 'query parameter')
    if (problem !== undefined) return fail(problem)
  }
  if (!rule.allowOtherQuery) {
    for (const name of query.keys()) {
      if (!rule.query.some((c) => c.name === name)) return fail(`query parameter ${shortName(name)} is not allowed`)
    }
  }
  return undefined
}

function headerFailure(rule: Rule, headers: DecideArgs['headers']): Failure | undefined {
  for (const c of rule.headers) {
    const value = headers[c.name]
    const values = value === undefined ? [] : typeof value === 'string' ? [value] : value
    const problem = constraintProblem(c, values, 'header')
    if (problem !== undefined) return { reason: 'header_not_allowed', rule, detail: `rule ${rule.id}: ${problem}` }
  }
  return undefined
}

/** A header the connector guards (an S3 ACL, say) fits only a rule that names it, whatever the value. */
function unnamedHeaderFailure(rule: Rule, connector: Connector, headers: DecideArgs['headers']): Failure | undefined {
  const guard = connector.headerGuard
  if (guard === undefined) return undefined
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || rule.headers.some((c) => c.name === name)) continue
    const does = guard.guarded(name)
    if (does !== undefined) {
      return { reason: 'header_not_named', rule, header: name.slice(0, 64), detail: `rule ${rule.id} does not name header ${shortName(name)}, which ${does}` }
    }
  }
  return undefined
}

function bodyFailure(rule: Rule, validator: BodyValidator, body: BodyFacts): Failure | undefined {
  const problem = 'invalid' in body ? `the body is not valid JSON (${body.invalid})` : validator.check(body.json)
  if (problem === undefined) return undefined
  return { reason: 'body_not_allowed', rule, detail: `rule ${rule.id}: ${problem}` }
}

function constraintProblem(c: ValueConstraint, values: readonly string[], kind: string): string | undefined {
  if (values.length === 0) return c.required ? `${kind} ${c.name} is required` : undefined
  if (c.pattern !== undefined) {
    for (const value of values) if (!c.pattern.test(value)) return `${kind} ${c.name} does not match its pattern`
  }
  return undefined
}

function rank(f: Failure): number {
  return SPECIFICITY[f.reason] ?? 0
}

/** Names chosen by the sandbox are echoed into details, bounded. */
function shortName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)
}

function deny(reason: DenyReason, rule: Rule | undefined, detail: string, header?: string): Decision {
  return header === undefined ? { effect: 'deny', reason, rule, detail } : { effect: 'deny', reason, rule, detail, header }
}
