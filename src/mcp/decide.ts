/**
 * The MCP decision: pure (no I/O, no clock), deny by default, one JSON-RPC message at a time.
 *
 * - tools/call, prompts/get (by name) and resources/read, /subscribe, /unsubscribe (by URI): the
 *   connector's rules for that kind whose pattern matches are tried in config order; for each,
 *   the grant (is its severity covered, and is it among the grant's rules when the grant lists
 *   them?), then the arguments against its schema. The first passing both allows. Otherwise the
 *   deny names the most telling failure — arguments > severity > not in grant — and its rule. A
 *   tool no rule matches takes the severity its annotations give it, when the connector trusts
 *   them and the server listed it (`annotated`), under a grant that lists no rules; else it is
 *   refused as unknown: a tool the server adds later stays refused until a rule or a trusted
 *   annotation covers it.
 * - Any other method: its method rule (defaults in config.ts) — a severity any grant on the
 *   connector must cover (the protocol's own messages are not among a grant's listed rules), or
 *   deny; a method no rule names is refused.
 * - A response (the client answering the server), a GET (the server's stream) and a DELETE (the
 *   end of the session) are the protocol's: allowed under any grant on the connector.
 *
 * A batch is allowed only when every message in it is (decideBatch). Visibility in lists is the
 * same decision without arguments (visible); a resource template's, a rule covering all it names
 * (templateVisible). Details name rules, never argument values.
 */

import { severityRank, type Grant, type McpPolicy, type McpRule, type Severity } from '../model/policy.ts'
import type { ClientMessage, ItemRef } from './jsonrpc.ts'
import { templateCovered } from './uri-template.ts'

export type McpDenyReason =
  | 'tool_unknown' // no rule names the tool, and no trusted annotation covers it
  | 'prompt_unknown' // no rule names the prompt
  | 'resource_not_allowed' // no rule matches the resource URI
  | 'arguments_not_allowed' // the arguments do not satisfy the rule's schema
  | 'not_in_grant' // the task's grant does not cover the rule (or this connector)
  | 'severity_exceeds_grant' // the rule needs a higher severity than the grant allows
  | 'mcp_method_not_allowed' // the JSON-RPC method is denied, or no rule names it
  | 'batch_refused' // another message of the same batch was refused

export type McpDecision =
  | { readonly effect: 'allow'; readonly reason: 'rule_matched'; readonly rule: string; readonly severity: Severity; readonly detail: string }
  | { readonly effect: 'deny'; readonly reason: McpDenyReason; readonly rule: string | undefined; readonly detail: string }

export interface McpDecideArgs {
  readonly policy: McpPolicy
  readonly connector: string
  readonly grants: readonly Grant[]
  /** Severities the server's trusted annotations give tools, learned from its tools/list answers (annotations.ts). */
  readonly annotated: ReadonlyMap<string, Severity> | undefined
}

/** Rule ids of what no configured rule stands for. */
export const RESPONSE_RULE = 'mcp.response'
export const ANNOTATIONS_RULE = 'mcp.annotations'
export const STREAM_RULE = 'mcp.stream'
export const SESSION_END_RULE = 'mcp.session_end'
export const methodRuleId = (method: string): string => `mcp.method:${method.slice(0, 64)}`

type Failure = { readonly reason: McpDenyReason; readonly rule: string; readonly detail: string }
const SPECIFICITY: Readonly<Partial<Record<McpDenyReason, number>>> = { not_in_grant: 1, severity_exceeds_grant: 2, arguments_not_allowed: 3 }

export function decideMessage(args: McpDecideArgs, message: ClientMessage): McpDecision {
  if (message.kind === 'response') return protocol(args, RESPONSE_RULE, 'read', 'a response to the server')
  if (message.item !== undefined) return decideItem(args, message.item)
  const rule = args.policy.methods.get(message.method)
  if (rule === undefined || rule === 'deny') {
    const detail = `method ${short(message.method)} is ${rule === undefined ? 'named by no rule' : 'denied'} on connector ${args.connector}`
    return { effect: 'deny', reason: 'mcp_method_not_allowed', rule: rule === undefined ? undefined : methodRuleId(message.method), detail }
  }
  return protocol(args, methodRuleId(message.method), rule, `method ${message.method}`)
}

/** The transport's own requests to the endpoint: GET opens the server's stream, DELETE ends the session (read, under any grant on the connector). */
export function decideTransport(args: McpDecideArgs, method: 'GET' | 'DELETE'): McpDecision {
  return method === 'GET' ? protocol(args, STREAM_RULE, 'read', "the server's stream") : protocol(args, SESSION_END_RULE, 'read', 'the end of the session')
}

/** Each message's decision; when any is refused, the others become batch_refused (a batch goes whole or not at all). */
export function decideBatch(args: McpDecideArgs, messages: readonly ClientMessage[]): McpDecision[] {
  const decisions = messages.map((m) => decideMessage(args, m))
  if (!decisions.some((d) => d.effect === 'deny')) return decisions
  return decisions.map((d) => d.effect === 'deny' ? d : { effect: 'deny', reason: 'batch_refused', rule: d.rule, detail: 'another message of the batch was refused' })
}

/** Whether a list may show the item: would a call on it be allowed, arguments aside. */
export function visible(args: McpDecideArgs, item: Omit<ItemRef, 'arguments'>): boolean {
  return decideItem(args, { ...item, arguments: undefined }).effect === 'allow'
}

/**
 * Whether resources/templates/list may show a URI template: a resource rule the grant covers
 * matches every URI it expands to (uri-template.ts), so that any resource it names could be read.
 */
export function templateVisible(args: McpDecideArgs, uriTemplate: string): boolean {
  return args.policy.resources.some((rule) => templateCovered(rule.match.source, uriTemplate) && grantFailure(args, rule.id, rule.severity, true) === undefined)
}

function decideItem(args: McpDecideArgs, item: ItemRef): McpDecision {
  const rules = item.kind === 'tool' ? args.policy.tools : item.kind === 'prompt' ? args.policy.prompts : args.policy.resources
  let worst: Failure | undefined
  let candidates = 0
  for (const rule of rules) {
    if (!rule.match.match(item.key)) continue
    candidates++
    const failure = grantFailure(args, rule.id, rule.severity, true) ?? argumentsFailure(rule, item)
    if (failure === undefined) return { effect: 'allow', reason: 'rule_matched', rule: rule.id, severity: rule.severity, detail: `rule ${rule.id} (${rule.severity}) matched ${item.kind} ${short(item.key)}` }
    if (worst === undefined || (SPECIFICITY[failure.reason] ?? 0) > (SPECIFICITY[worst.reason] ?? 0)) worst = failure
  }
  if (worst !== undefined) return { effect: 'deny', ...worst }
  const annotated = item.kind === 'tool' && args.policy.trustAnnotations && candidates === 0 ? args.annotated?.get(item.key) : undefined
  if (annotated !== undefined) {
    const failure = grantFailure(args, ANNOTATIONS_RULE, annotated, false)
    if (failure !== undefined) return { effect: 'deny', ...failure }
    return { effect: 'allow', reason: 'rule_matched', rule: ANNOTATIONS_RULE, severity: annotated, detail: `tool ${short(item.key)} is ${annotated} by the annotations the server gave it` }
  }
  const reason = item.kind === 'tool' ? 'tool_unknown' : item.kind === 'prompt' ? 'prompt_unknown' : 'resource_not_allowed'
  return { effect: 'deny', reason, rule: undefined, detail: `no rule of connector ${args.connector} names ${item.kind} ${short(item.key)}${item.kind === 'tool' && args.policy.trustAnnotations ? ', and the server listed no annotations for it' : ''}` }
}

/** The protocol's own messages: any grant on the connector covering the severity. */
function protocol(args: McpDecideArgs, rule: string, severity: Severity, what: string): McpDecision {
  const failure = grantFailure(args, rule, severity, false)
  if (failure !== undefined) return { effect: 'deny', ...failure }
  return { effect: 'allow', reason: 'rule_matched', rule, severity, detail: `${what} (${severity})` }
}

/** `listed`: whether a grant that lists its rules must list this one; otherwise such a grant covers it only for the protocol's own rules (never for annotations). */
function grantFailure(args: McpDecideArgs, rule: string, severity: Severity, listed: boolean): Failure | undefined {
  let inScope = false
  for (const grant of args.grants) {
    if (grant.connector !== args.connector) continue
    if (grant.rules !== undefined && (listed ? !grant.rules.includes(rule) : rule === ANNOTATIONS_RULE)) continue
    if (severityRank(severity) <= severityRank(grant.maxSeverity)) return undefined
    inScope = true
  }
  if (inScope) return { reason: 'severity_exceeds_grant', rule, detail: `rule ${rule} needs ${severity}, above what the task grant allows` }
  return { reason: 'not_in_grant', rule, detail: `the task grant does not include rule ${rule} of connector ${args.connector}` }
}

function argumentsFailure(rule: McpRule, item: ItemRef): Failure | undefined {
  if (rule.arguments === undefined || item.arguments === undefined) return undefined
  const problem = rule.arguments.check(item.arguments)
  return problem === undefined ? undefined : { reason: 'arguments_not_allowed', rule: rule.id, detail: `rule ${rule.id}: arguments ${problem}` }
}

/** Names chosen by the sandbox are echoed into details and messages, bounded. */
export function short(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)
}
