/**
 * explain for a request to a connector's MCP endpoint: its JSON-RPC messages decided by
 * mcp/decide.ts (decideBatch, decideTransport), as the mcp-decide stage (proxy/stages/mcp.ts)
 * decides them, in the same order of checks: what is not MCP's (an upgrade, a query, another
 * method) first, then the body, then each message. Tools the connector allows only by the
 * server's trusted annotations are refused here: those are learned from the server's own lists,
 * which explain does not ask for.
 */
import type { Connector, Grant, McpPolicy } from '../model/policy.ts'
import { decideBatch, decideTransport, type McpDecision } from '../mcp/decide.ts'
import { readMessages, type ClientMessage } from '../mcp/jsonrpc.ts'
import { parseStrictJson } from '../policy/strict-json.ts'
import { carriesBody, jsonBodyProblem } from '../proxy/headers.ts'

export interface McpStep {
  /** The JSON-RPC method ('(response)' for the client answering the server; the HTTP method for GET and DELETE). */
  readonly method: string
  /** The tool, prompt or resource URI it names. */
  readonly item: string | null
  readonly decision: 'allow' | 'deny'
  readonly reason: string
  readonly rule: string | null
  readonly detail: string
}

export interface McpExplained {
  readonly decision: 'allow' | 'deny'
  readonly reason: string
  readonly rule: string | null
  readonly detail: string
  /** The error code the client would get (a JSON-RPC error carries it in its data); null when forwarded. */
  readonly code: string | null
  readonly steps: readonly McpStep[]
}

export function explainMcp(connector: Connector, policy: McpPolicy, grants: readonly Grant[], request: {
  readonly method: string
  readonly rawQuery: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}): McpExplained {
  const args = { policy, connector: connector.name, grants, annotated: undefined }
  const refused = (reason: string, detail: string, code = 'policy_denied'): McpExplained => ({ decision: 'deny', reason, rule: null, detail, code, steps: [] })
  const { method } = request
  if (request.rawQuery !== '') return refused('query_not_allowed', 'an MCP endpoint takes no query parameters')
  if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') return refused('method_not_allowed', `${method.slice(0, 32)} is not allowed on an MCP endpoint: POST, GET and DELETE are`)
  if (method !== 'POST') {
    if (carriesBody(request.headers)) return refused('body_unexpected', `${method} on an MCP endpoint takes no body`, 'body_unexpected')
    const decision = decideTransport(args, method)
    return outcome([step(method, null, decision)], decision.effect === 'allow' ? undefined : decision)
  }
  const problem = jsonBodyProblem(request.headers, 'checked')
  if (problem !== undefined) return refused('mcp_request_invalid', problem, 'mcp_request_invalid')
  const facts = parseStrictJson(Buffer.from(request.body ?? ''))
  if ('invalid' in facts) return refused('mcp_request_invalid', facts.invalid, 'mcp_request_invalid')
  const read = readMessages(facts.json)
  if ('invalid' in read) return refused('mcp_request_invalid', read.invalid, 'mcp_request_invalid')
  const decisions = decideBatch(args, read.messages)
  const steps = read.messages.map((m, i) => step(messageMethod(m), m.kind === 'response' ? null : m.item?.key.slice(0, 256) ?? null, decisions[i] as McpDecision))
  const denied = decisions.find((d) => d.effect === 'deny' && d.reason !== 'batch_refused') ?? decisions.find((d) => d.effect === 'deny')
  return outcome(steps, denied, decisions[0])
}

function outcome(steps: McpStep[], denied: McpDecision | undefined, first?: McpDecision): McpExplained {
  if (denied !== undefined) return { decision: 'deny', reason: denied.reason, rule: denied.rule ?? null, detail: denied.detail, code: 'policy_denied', steps }
  // As the data plane records it: the first message's rule.
  return { decision: 'allow', reason: 'rule_matched', rule: first?.rule ?? steps[0]?.rule ?? null, detail: steps.map((s) => s.detail).join('; '), code: null, steps }
}

function step(method: string, item: string | null, d: McpDecision): McpStep {
  return { method, item, decision: d.effect, reason: d.reason, rule: d.rule ?? null, detail: d.detail }
}

function messageMethod(m: ClientMessage): string {
  return m.kind === 'response' ? '(response)' : m.method.slice(0, 128)
}
