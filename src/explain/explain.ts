/**
 * What keyvalet would decide for one request under a grant, step by step, without sending
 * anything: the engine of `keyvalet explain` and `POST /v1/explain`. Pure: no upstream, no vault,
 * no session, no clock.
 *
 * The same steps as the data plane: the connector is found as route does it (a gateway path
 * `/<connector>/...`, or an absolute URL matched on the upstream origin and the longest base
 * path), the path is normalised by policy/path.ts (an ambiguous one is refused, path_ambiguous),
 * and policy/decide.ts decides; when a rule's JSON Schema needs the body, the body given is read
 * as decide's stage reads it (strict JSON, JSON content types only). The decision is decide's own
 * result. Each rule's step is decide's result over a connector holding that rule alone: the first
 * check it fails, or that it allows (rules.ts).
 *
 * A request to a connector's MCP endpoint is decided on its JSON-RPC messages instead (mcp.ts).
 *
 * Not evaluated, and said so in `not_evaluated`: the checks that need a real request, a real
 * address or shared state (the egress address check, budgets and rate limits, an MCP server's
 * trusted annotations, the values a real request carries beside the policy). A real request can
 * still be refused by those.
 */
import { KeyvaletError } from '../errors.ts'
import type { Budget } from '../model/budget.ts'
import { SEVERITIES, severityRank, type Connector, type Grant, type Policy, type Severity } from '../model/policy.ts'
import type { BodyFacts, DecideArgs } from '../policy/decision.ts'
import { normalisePath, splitTarget } from '../policy/path.ts'
import { parseStrictJson } from '../policy/strict-json.ts'
import { carriesBody, jsonBodyProblem } from '../proxy/headers.ts'
import { baseSegments, startsWith } from '../proxy/stages/route.ts'
import { egressOf, type Egress } from './egress.ts'
import { explainMcp, type McpStep } from './mcp.ts'
import { notEvaluated } from './not-evaluated.ts'
import { decideWithBody, ruleSteps } from './rules.ts'

import type { RuleStep } from './rules.ts'

export type { RuleStep }

export interface ExplainInput {
  readonly grants: readonly Grant[]
  /** Upper-case. */
  readonly method: string
  /** A gateway path (`/github/repos/acme/app`) or an absolute URL (`https://api.github.com/repos/acme/app`), query included. */
  readonly url: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}

export interface Explanation {
  /** The policy's decision (decide's). A refusal under report mode is still 'deny' here, with `report` true. */
  readonly decision: 'allow' | 'deny'
  /** A policy reason (policy/decision.ts), or the error code of a refusal before the policy (connector_unknown, destination_refused, path_ambiguous). */
  readonly reason: string
  readonly rule: string | null
  /** How the decision came about, for the operator. */
  readonly detail: string
  readonly connector: string | null
  /** The path below the connector, as decided on (normalised segments). */
  readonly path: string | null
  /** How the connector was found: the gateway path's first segment, or the forward request's origin and base path. */
  readonly via: 'gateway_path' | 'forward_origin' | null
  /** The error code the sandbox would be answered with (errors.ts): a policy refusal, or the egress check's for an upstream address refused; null when the request would be forwarded. */
  readonly code: string | null
  /** The connector or the rule is in report mode: the refusal is not enforced; the request is forwarded and audited as would_deny. */
  readonly report: boolean
  /** The severity the deciding rule needs, and the most the grant gives on this connector (for that rule, when one decided). */
  readonly severity: { readonly needed: Severity | null; readonly granted: Severity | null }
  /** Every rule of the connector in config order: whether it allows, or the first check it fails (none for an MCP endpoint). */
  readonly rules: readonly RuleStep[]
  /** A request to the connector's MCP endpoint: each JSON-RPC message as decided by its tool, prompt, resource and method rules (mcp.ts). */
  readonly mcp?: readonly McpStep[]
  /** The egress address check of the upstream host: judged now for an IP literal, at sending for a name. */
  readonly egress?: Egress
  /** The checks a real request also goes through that this explanation did not evaluate, and why. */
  readonly not_evaluated: readonly string[]
}

export function explain(policy: Policy, input: ExplainInput, budgets: readonly Budget[] = []): Explanation {
  const refused = (reason: string, detail: string, via: Explanation['via'] = null): Explanation => ({
    decision: 'deny', reason, rule: null, detail, connector: null, path: null, via, code: reason, report: false,
    severity: { needed: null, granted: null }, rules: [], not_evaluated: [],
  })
  const target = requestTarget(input.url)
  let rawQuery: string
  let all: readonly string[]
  try {
    const split = splitTarget(target.path)
    rawQuery = split.rawQuery
    all = normalisePath(split.rawPath).segments
  } catch (err) {
    return refused('path_ambiguous', err instanceof KeyvaletError ? `the path is ambiguous (${String(err.detail?.why ?? err.code)})` : 'the path is ambiguous')
  }
  const via = target.origin === undefined ? 'gateway_path' : 'forward_origin'
  const found = target.origin === undefined ? byName(policy, all) : byOrigin(policy, target.origin, all)
  if ('refused' in found) return refused(found.refused, found.detail, via)
  const { connector, segments } = found
  const headers = { ...input.headers, ...(input.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(input.body)) }) }
  const args: DecideArgs = {
    connector, grants: input.grants, method: input.method, segments: segments.length === 0 ? [''] : segments,
    query: new URLSearchParams(rawQuery), headers, carriesBody: carriesBody(headers),
  }
  const egress = egressOf(connector)
  const mcpPolicy = connector.mcp
  if (mcpPolicy !== undefined && mcpPolicy.endpoints.some((e) => e.match(args.segments))) {
    const m = explainMcp(connector, mcpPolicy, input.grants, { method: input.method, rawQuery, headers, body: input.body })
    return {
      decision: m.decision, reason: m.reason, rule: m.rule, detail: m.detail, connector: connector.name, path: `/${args.segments.join('/')}`, via,
      code: m.code ?? egress.code, report: false, severity: { needed: null, granted: granted(connector, input.grants, undefined) }, rules: [], mcp: m.steps, egress,
      not_evaluated: notEvaluated(connector, args.segments, m.decision === 'allow' ? m.rule : undefined, budgets, egress),
    }
  }
  const body = bodyFacts(headers, input.body ?? '')
  const decision = decideWithBody(args, body)
  const rule = decision.rule
  const report = decision.effect === 'deny' && decision.reason !== 'body_unexpected' && (rule?.report === true || connector.report === true)
  // A request the policy lets through still meets the egress check of the upstream's address.
  const code = decision.effect === 'allow' || report ? egress.code : decision.reason === 'body_unexpected' ? 'body_unexpected' : 'policy_denied'
  return {
    decision: decision.effect, reason: decision.reason, rule: rule?.id ?? null, detail: decision.detail, connector: connector.name,
    path: `/${args.segments.join('/')}`, via, code, report,
    severity: { needed: rule?.severity ?? null, granted: granted(connector, input.grants, rule?.id) },
    rules: ruleSteps(args, body),
    egress,
    not_evaluated: notEvaluated(connector, args.segments, decision.effect === 'allow' || report ? rule?.id ?? null : undefined, budgets, egress),
  }
}

/** The most the grants give on the connector: for that rule when one is named (a grant listing rules counts only if it lists it). */
function granted(connector: Connector, grants: readonly Grant[], rule: string | undefined): Severity | null {
  const ranks = grants.filter((g) => g.connector === connector.name && (rule === undefined || g.rules === undefined || g.rules.includes(rule))).map((g) => severityRank(g.maxSeverity))
  return ranks.length === 0 ? null : SEVERITIES[Math.max(...ranks)] ?? null
}

/** The origin (absolute URL) and the raw request target (path and query, undecoded: as the listeners see it). */
function requestTarget(url: string): { origin: string | undefined; path: string } {
  if (url.startsWith('/')) return { origin: undefined, path: url }
  const match = /^(https?:\/\/[^/?#]+)([/?][^#]*)?$/i.exec(url)
  let origin: string | undefined
  try {
    origin = match === null ? undefined : new URL(match[1] as string).origin
  } catch {
    origin = undefined
  }
  if (match === null || origin === undefined) throw new KeyvaletError('admin_request_invalid', { message: 'url must be a gateway path (/connector/...) or an absolute http(s) URL without a fragment.' })
  const rest = match[2] ?? '/'
  return { origin, path: rest.startsWith('?') ? `/${rest}` : rest }
}

type Found = { readonly connector: Connector; readonly segments: readonly string[] } | { readonly refused: 'connector_unknown' | 'destination_refused'; readonly detail: string }

/** Gateway: the first segment names the connector. */
function byName(policy: Policy, segments: readonly string[]): Found {
  const name = segments[0] ?? ''
  const connector = policy.connectors.get(name)
  if (connector === undefined) return { refused: 'connector_unknown', detail: `no connector is named ${JSON.stringify(name.slice(0, 64))}` }
  return { connector, segments: segments.slice(1) }
}

/** Forward proxy: the connector of that origin whose base path prefixes the path, the longest first. */
function byOrigin(policy: Policy, origin: string, segments: readonly string[]): Found {
  const connector = [...policy.connectors.values()]
    .filter((c) => c.upstream.origin === origin && startsWith(segments, baseSegments(c)))
    .sort((a, b) => baseSegments(b).length - baseSegments(a).length)[0]
  if (connector === undefined) return { refused: 'destination_refused', detail: `no connector's upstream is ${origin.slice(0, 300)}` }
  return { connector, segments: segments.slice(baseSegments(connector).length) }
}

function bodyFacts(headers: Readonly<Record<string, string>>, body: string): BodyFacts {
  const problem = jsonBodyProblem(headers, 'checked')
  return problem === undefined ? parseStrictJson(Buffer.from(body)) : { invalid: problem }
}
