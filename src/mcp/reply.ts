/**
 * Refusals in MCP's own form: a JSON-RPC error answering each request of the refused POST, with
 * HTTP 200, so the official SDK hands the agent keyvalet's message and reason as the call's error
 * (an HTTP 403 would reach it as a transport failure). A POST holding no request (notifications,
 * responses) has nothing to answer in JSON-RPC: it gets keyvalet's HTTP error document.
 */

import { KeyvaletError } from '../errors.ts'
import { short, type McpDecision } from './decide.ts'
import type { ClientMessage, JsonRpcId } from './jsonrpc.ts'

/** The JSON-RPC error code of a keyvalet refusal (in the range JSON-RPC leaves to servers); `data.reason` says why. */
export const KEYVALET_REFUSED = -32010

interface ErrorObject { readonly code: number; readonly message: string; readonly data: Record<string, unknown> }

/** A policy refusal of the POST's messages (`decisions` in the same order), one error per request. */
export function refusal(requestId: string, batch: boolean, messages: readonly ClientMessage[], decisions: readonly McpDecision[]): KeyvaletError {
  const refused = decisions.find((d) => d.reason !== 'batch_refused' && d.effect === 'deny') ?? decisions.find((d) => d.effect === 'deny')
  if (refused === undefined || refused.effect !== 'deny') throw new Error('refusal() of a POST nothing refused')
  const first = messages[decisions.indexOf(refused)]
  const message = first === undefined ? 'refused' : explain(first, refused)
  const answers = messages.flatMap((m, i) => {
    const d = decisions[i]
    if (m.kind !== 'request' || d === undefined) return []
    const text = d.effect === 'deny' ? explain(m, d) : explain(m, { effect: 'deny', reason: 'batch_refused', rule: undefined, detail: '' })
    return [envelope(m.id, { code: KEYVALET_REFUSED, message: text, data: { keyvalet_error: 'policy_denied', reason: d.effect === 'deny' ? d.reason : 'batch_refused', request_id: requestId } })]
  })
  const detail = {
    reason: refused.reason,
    rule: refused.rule ?? null,
    why: refused.detail,
    ...(batch ? { batch: decisions.map((d) => ({ effect: d.effect, reason: d.reason, rule: d.rule ?? null })) } : {}),
  }
  return new KeyvaletError('policy_denied', { message, detail, ...replyOf(answers, batch) })
}

/** A POST that is not valid JSON-RPC, answered with JSON-RPC's own error (id null) and HTTP 400. */
export function invalidMessage(requestId: string, why: string, code: number): KeyvaletError {
  const message = `keyvalet: the request is not a valid MCP message: ${why}.`
  const body = envelope(null, { code, message, data: { keyvalet_error: 'mcp_request_invalid', request_id: requestId } })
  return new KeyvaletError('mcp_request_invalid', { message, detail: { why }, reply: { status: 400, contentType: 'application/json', body: JSON.stringify(body) } })
}

function replyOf(answers: readonly object[], batch: boolean): { reply?: { status: number; contentType: string; body: string } } {
  if (answers.length === 0) return {}
  return { reply: { status: 200, contentType: 'application/json', body: JSON.stringify(batch ? answers : answers[0]) } }
}

function envelope(id: JsonRpcId | null, error: ErrorObject): object {
  return { jsonrpc: '2.0', id, error }
}

/** What the agent is told: the method and the item it named, what was wrong, ending in the reason. Never an argument value. */
function explain(message: ClientMessage, decision: Extract<McpDecision, { effect: 'deny' }>): string {
  const what = message.kind === 'response' ? 'a response' : message.item === undefined ? message.method : `${message.method} of ${message.item.kind} ${short(message.item.key)}`
  const why: Record<typeof decision.reason, string> = {
    tool_unknown: 'no rule of this connector allows that tool',
    prompt_unknown: 'no rule of this connector allows that prompt',
    resource_not_allowed: 'no rule of this connector allows that resource',
    arguments_not_allowed: `the arguments do not have the shape rule ${decision.rule ?? ''} requires`,
    not_in_grant: "this task's grant does not cover it",
    severity_exceeds_grant: "it needs a higher severity than this task's grant allows",
    mcp_method_not_allowed: 'that method is not allowed through keyvalet on this connector',
    batch_refused: 'another message of the same batch was refused, so none was sent',
  }
  return `keyvalet refused ${what}: ${why[decision.reason]} (${decision.reason}).`
}

/**
 * Another stage's refusal of a POST to an MCP endpoint (an approval denied or timed out) in MCP's
 * form: one JSON-RPC error per request the POST carried, with keyvalet's message and code, so the
 * agent reads why. `body` is the POST as mcp-decide read it (strict JSON). A POST holding no
 * request keeps the HTTP error.
 */
export function refusedInMcpForm(error: KeyvaletError, requestId: string, body: Buffer | undefined): KeyvaletError {
  let parsed: unknown
  try {
    parsed = body === undefined ? undefined : JSON.parse(body.toString('utf8'))
  } catch {
    return error
  }
  const batch = Array.isArray(parsed)
  const messages: readonly unknown[] = Array.isArray(parsed) ? (parsed as unknown[]) : [parsed]
  const answers = messages.flatMap((m) => {
    if (m === null || typeof m !== 'object' || !('method' in m) || !('id' in m)) return []
    const id = (m as { id: JsonRpcId }).id
    return [envelope(id, { code: KEYVALET_REFUSED, message: error.message, data: { keyvalet_error: error.code, request_id: requestId } })]
  })
  if (answers.length === 0) return error
  return new KeyvaletError(error.code, { message: error.message, ...(error.detail === undefined ? {} : { detail: error.detail }), ...replyOf(answers, batch) })
}
