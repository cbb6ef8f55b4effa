import { maskRecord } from '../audit/mask.ts'
import type { ApprovalAuditEntry, AuditFields } from '../audit/record.ts'
import type { KeyvaletError } from '../errors.ts'
import { MaskPatterns } from '../redact/patterns.ts'
import type { ApprovalFacts, RequestContext } from './context.ts'
import { decidedOn } from './decided-on.ts'
import { requestMask } from './request-mask.ts'

/**
 * The audit record of one request, from what the stages put on its context. `status` is what the
 * sandbox was (or is being) answered. Never copies a value the sandbox sent: query keys only.
 * Every form of the credential, the assertion and the secrets the failure used is masked in it.
 */
export function auditFields(ctx: RequestContext, error: KeyvaletError | undefined, status: number): AuditFields {
  const mask = error === undefined || error.secrets.length === 0 ? requestMask(ctx) : MaskPatterns.merge(requestMask(ctx), MaskPatterns.of(error.secrets))
  return maskRecord(fieldsOf(ctx, error, status), mask)
}

function fieldsOf(ctx: RequestContext, error: KeyvaletError | undefined, status: number): AuditFields {
  const session = ctx.session
  const { reason, rule } = statedDecision(ctx, error)
  const fields: Mutable<AuditFields> = {
    request_id: ctx.id,
    mode: ctx.mode,
    session: session?.id ?? null,
    agent: session?.agent ?? null,
    user: session?.user ?? null,
    workspace: session?.workspace ?? null,
    task: session?.task ?? null,
    connector: ctx.connector?.name ?? null,
    method: (ctx.req.method ?? '').slice(0, 32),
    path: ctx.path ?? null,
    query_keys: queryKeys(ctx.rawQuery),
    // A sandbox that left was not refused: the exchange failed.
    decision: error === undefined ? (ctx.wouldDeny === undefined ? 'allow' : 'would_deny') : error.status >= 500 || error.code === 'client_closed' ? 'error' : 'deny',
    reason,
    rule,
    credential: ctx.credential?.label ?? null,
    status,
    upstream_status: ctx.upstreamStatus ?? null,
    error: error?.code ?? null,
    bytes_in: ctx.bytesIn,
    bytes_out: ctx.bytesOut,
    redactions: ctx.redactions,
    latency_ms: Number(process.hrtime.bigint() - ctx.started) / 1e6,
    trace_id: ctx.trace.traceId,
  }
  // Optional members set only when present (one object per record, none copied).
  if (ctx.mcp !== undefined && ctx.mcp.messages.length > 0) fields.mcp = ctx.mcp.messages
  if (ctx.approval !== undefined) fields.approval = approvalEntry(ctx.approval)
  if (ctx.configVersion !== undefined) fields.config_version = ctx.configVersion
  const decided = decidedOn(ctx)
  if (decided !== undefined) fields.decided_on = decided
  const detail = extraDetail(ctx, error?.detail)
  if (detail !== undefined) fields.detail = detail
  return fields
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** The error's detail, with what only some requests have (a retry, HTTP/2, an assertion, …) added; undefined when there is none. */
function extraDetail(ctx: RequestContext, detail: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined = detail === undefined ? undefined : { ...detail }
  const add = (key: string, value: unknown): void => void ((out ??= {})[key] = value)
  if (ctx.retried === true) add('retried_after_401', true)
  if (ctx.req.httpVersionMajor === 2) add('http_version', '2')
  if (ctx.assertion !== undefined) add('assertion', { kid: ctx.assertion.kid, jti: ctx.assertion.jti })
  if (ctx.copySource !== undefined) { add('copy_source', ctx.copySource.path); add('copy_source_rule', ctx.copySource.rule) }
  if (ctx.wouldDeny !== undefined) add('would_deny', ctx.wouldDeny.why)
  if (ctx.usage !== undefined) add('usage', { model: ctx.usage.model ?? null, input_tokens: ctx.usage.inputTokens, output_tokens: ctx.usage.outputTokens, cost: ctx.usage.cost })
  return out
}

/**
 * The reason and rule a record states: always those of the outcome. A refusal states its own — a
 * policy denial (by decide, or by a later policy check such as the S3 copy source) the policy
 * reason and the rule it names, which it carries in its detail; any other error its code, beside
 * the rule that had allowed the request, if one had. Only a request that was answered states the
 * decision that allowed it (rule_matched).
 */
function statedDecision(ctx: RequestContext, error: KeyvaletError | undefined): { reason: string; rule: string | null } {
  const decided = ctx.decision?.effect === 'need_body' ? undefined : ctx.decision
  // A request to an MCP endpoint is decided by its messages' rules (stages/mcp.ts), not by decide's.
  if (error === undefined && ctx.wouldDeny !== undefined) return { reason: ctx.wouldDeny.reason, rule: ctx.wouldDeny.rule }
  if (error === undefined) return { reason: decided?.reason ?? (ctx.mcp?.rule === undefined ? 'unknown' : 'rule_matched'), rule: decided?.rule?.id ?? ctx.mcp?.rule ?? null }
  const detail = error.detail
  // decide refuses with policy_denied, or body_unexpected for a body the method takes none of (400): both are its denials.
  if ((error.code === 'policy_denied' || error.code === 'body_unexpected') && typeof detail?.reason === 'string') {
    return { reason: detail.reason, rule: typeof detail.rule === 'string' ? detail.rule : null }
  }
  return { reason: error.code, rule: decided?.effect === 'allow' ? decided.rule.id : ctx.mcp?.rule ?? null }
}

function approvalEntry(a: ApprovalFacts): ApprovalAuditEntry {
  return { id: a.id, decision: a.state, approver: a.approver ?? null, reason: a.reason ?? null, wait_ms: Math.round(a.waitedMs), digest: a.digest, remembered: a.remembered }
}

/** A record for something decided outside the request stages (a CONNECT, a parser refusal): who and what are unknown until set. */
export function outsideFields(requestId: string, method: string, outcome: Pick<AuditFields, 'decision' | 'reason' | 'status' | 'error'>): AuditFields {
  return {
    request_id: requestId, mode: 'gateway', session: null, agent: null, user: null, workspace: null, task: null, connector: null,
    method: method.slice(0, 32), path: null, query_keys: [], rule: null, credential: null, upstream_status: null,
    bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 0, ...outcome,
  }
}

/** The record of a refusal that happened before any stage ran (parser errors, CONNECT, upgrades). */
export function refusalFields(requestId: string, method: string, error: KeyvaletError): AuditFields {
  const fields = {
    ...outsideFields(requestId, method, { decision: 'deny', reason: error.code, status: error.status, error: error.code }),
    ...(error.detail === undefined ? {} : { detail: error.detail }),
  }
  return error.secrets.length === 0 ? fields : maskRecord(fields, MaskPatterns.of(error.secrets))
}

function queryKeys(rawQuery: string | undefined): string[] {
  if (rawQuery === undefined || rawQuery === '') return []
  return [...new Set(new URLSearchParams(rawQuery).keys())].map((k) => k.slice(0, 64)).slice(0, 50)
}
