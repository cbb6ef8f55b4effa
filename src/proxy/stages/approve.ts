import { Approvals } from '../../approvals/approvals.ts'
import { requestDigest, type ApprovedRequest } from '../../approvals/digest.ts'
import { approvalSummary, safeText } from '../../approvals/summary.ts'
import { withoutParam } from '../../credentials/query-param.ts'
import { KeyvaletError } from '../../errors.ts'
import { refusedInMcpForm } from '../../mcp/reply.ts'
import type { ApprovalOptions, Approval } from '../../model/approval.ts'
import type { Connector, McpRule, Policy, Severity } from '../../model/policy.ts'
import { GRANT_APPROVAL_TIMEOUT_MS, grantApproval } from '../../policy/grant.ts'
import { BodyScanner } from '../body-scanner.ts'
import type { AdmittedContext, OutboundContext } from '../context.ts'
import { carriesBody } from '../headers.ts'
import type { Stage } from '../pipeline.ts'
import { readBody } from './decide.ts'
import { credentialSlot, forwardedHeaders, forwardedQuery } from './inject.ts'

/** What the sandbox is told of an approver's reason: at most this many characters, control characters removed. */
const REASON_LIMIT = 200

/**
 * approve: after budget (a request over a budget never asks anyone, unless the budget is a soft one
 * with `approval`: then it asks instead of refusing) and before credential (no
 * credential is fetched, nor held, while a request waits). A request whose allowing rule needs
 * approval is read whole (up to limits.approval_body_bytes), its digest and summary computed from
 * exactly what will be forwarded, and held open until a person decides (approvals/approvals.ts):
 * approved, it goes on with that body; denied, 403 approval_denied with the reason; no decision
 * in time, 403 approval_timeout; the sandbox leaving cancels it. A request the session's grants
 * allow only with `+approval` (policy/grant.ts: grantApproval) waits the same way, so every
 * connector has this stage. `idleTimeoutMs`: a grant's wait ends a second before the idle
 * connection would be closed. A session with `maxPendingPerSession` requests waiting already is
 * refused at once, 429 approval_limit_reached, so a sandbox cannot flood its approvers.
 */
export function createApprove(approvals: Approvals, connector: Connector, policy: Policy, limits: { readonly maxBodyBytes: number; readonly maxPendingPerSession: number; readonly idleTimeoutMs: number }, clock: () => number): Stage {
  const { maxBodyBytes, maxPendingPerSession, idleTimeoutMs } = limits
  const mcpRules = new Map<string, McpRule>([...(connector.mcp?.tools ?? []), ...(connector.mcp?.prompts ?? []), ...(connector.mcp?.resources ?? [])].map((rule) => [rule.id, rule]))
  const longestGrantWait = Math.max(1000, idleTimeoutMs - 1000)
  const placeholders = [...policy.connectors.values()].flatMap((c) => (c.placeholder === undefined ? [] : [{ connector: c.name, value: c.placeholder }]))
  return {
    name: 'approve',
    run(ctx) {
      const needed = ctx.wouldDeny === undefined ? requirement(ctx) : undefined
      if (needed === undefined) return
      // On an MCP endpoint a refusal goes back as JSON-RPC errors, so the agent reads the reason.
      if (ctx.mcp === undefined) return park(ctx, needed.rule, needed.options)
      return park(ctx, needed.rule, needed.options).catch((err: unknown) => {
        throw err instanceof KeyvaletError && err.code.startsWith('approval_') ? refusedInMcpForm(err, ctx.id, ctx.body) : err
      })
    },
  }

  /**
   * What the request needs approval for, with its options: a soft budget it is over
   * (`budget:NAME`), decide's rule (its own approval, else its grants'), or the first MCP
   * message whose tool or prompt rule, or whose grants, need it.
   */
  function requirement(ctx: AdmittedContext): { rule: string; options: ApprovalOptions } | undefined {
    // Over a soft budget: the budget's approval, whatever the rule says.
    if (ctx.overBudget !== undefined) return { rule: `budget:${ctx.overBudget.budget}`, options: ctx.overBudget.options }
    const decision = ctx.decision
    if (decision?.effect === 'allow') {
      const options = decision.rule.approval ?? byGrant(ctx, decision.rule)
      if (options !== undefined) return { rule: decision.rule.id, options }
    }
    for (const d of ctx.mcp?.decisions ?? []) {
      const rule = d.effect === 'allow' && d.rule !== undefined ? mcpRules.get(d.rule) : undefined
      const options = rule === undefined ? undefined : rule.approval ?? byGrant(ctx, rule)
      if (options !== undefined && rule !== undefined) return { rule: rule.id, options }
    }
    return undefined
  }

  /** The options of a grant's `+approval` when the session's grants allow the rule only with it. */
  function byGrant(ctx: AdmittedContext, rule: { readonly id: string; readonly severity: Severity }): ApprovalOptions | undefined {
    const needed = grantApproval(ctx.session.grants, connector.name, rule)
    if (needed === undefined) return undefined
    return { timeoutMs: Math.min(needed.timeoutMs ?? GRANT_APPROVAL_TIMEOUT_MS, longestGrantWait), summary: undefined }
  }

  async function park(ctx: AdmittedContext, rule: string, options: ApprovalOptions): Promise<void> {
    const body = await heldBody(ctx, maxBodyBytes)
    // A task key or a placeholder in the body is refused before anyone is shown it.
    if (body !== undefined) new BodyScanner(placeholders).scan(body)
    ctx.body = body
    const request = approvedRequest(ctx)
    const digest = requestDigest(request)
    const now = clock()
    const session = ctx.session
    const query = forwardedQuery(ctx)
    const pending = {
      id: Approvals.newId(), requestId: ctx.id, session: session.id, agent: session.agent, user: session.user, workspace: session.workspace, task: session.task,
      connector: connector.name, rule, method: request.method, host: connector.upstream.host, path: safeText(query === '' ? ctx.path : `${ctx.path}?${query}`, 2000),
      summary: approvalSummary(options.summary, body, headerValue(ctx.req.headers['content-type'])), digest, createdAt: now, expiresAt: now + options.timeoutMs,
    }
    let outcome
    try {
      outcome = await approvals.wait(pending, ctx.signal, maxPendingPerSession)
    } catch (err) {
      // The sandbox left (or the request was cut): wait cancelled the approval.
      if (ctx.signal?.aborted === true) ctx.approval = { id: pending.id, state: 'cancelled', approver: undefined, reason: undefined, waitedMs: clock() - now, digest, remembered: false }
      if (err instanceof KeyvaletError) throw err
      throw new KeyvaletError('approval_unavailable', { detail: { why: String(err) } })
    }
    const { approval, remembered } = outcome
    ctx.approval = { id: approval.id, state: approval.state, approver: approval.approver, reason: approval.reason, waitedMs: clock() - now, digest, remembered }
    if (approval.state === 'approved') return
    if (approval.state === 'denied') throw denied(approval)
    throw new KeyvaletError('approval_timeout', { message: `No one approved this request within ${Math.round(options.timeoutMs / 1000)} s; it was not sent (approval ${approval.id}).`, detail: { approval: approval.id } })
  }
}

/**
 * The check before forward, in the send list of a connector with approvals: the request about to
 * go must be, byte for byte, the one approved (its digest, without what keyvalet adds after the
 * yes: the credential, the assertion, the attribution header, traceparent). A mismatch is a bug
 * somewhere between the two; nothing is sent (approval_mismatch).
 */
export function createApprovedCheck(connector: Connector): Stage<OutboundContext> {
  const added = keyvaletHeaders(connector)
  const param = credentialSlot(connector).param
  return {
    name: 'approved-check',
    run(ctx) {
      if (ctx.approval === undefined) return
      const { outbound } = ctx
      const query = param === undefined ? outbound.query : withoutParam(outbound.query, param)
      const headers = Object.fromEntries(Object.entries(outbound.headers).filter(([name]) => !added.has(name)))
      // What forward sends: the request's method and path, the outbound query and headers, the body held.
      const sent = requestDigest({ method: ctx.req.method ?? 'GET', url: urlOf(connector.upstream.origin, ctx.path, query), headers, body: ctx.body ?? Buffer.alloc(0) })
      if (sent !== ctx.approval.digest) throw new KeyvaletError('approval_mismatch', { detail: { approval: ctx.approval.id, approved: ctx.approval.digest, sending: sent } })
    },
  }
}

/** The request as it will be forwarded, before keyvalet adds its own headers: what the digest covers. */
export function approvedRequest(ctx: AdmittedContext): ApprovedRequest {
  const added = keyvaletHeaders(ctx.connector)
  const headers = Object.fromEntries(Object.entries(forwardedHeaders(ctx)).filter(([name]) => !added.has(name)))
  return { method: ctx.req.method ?? 'GET', url: urlOf(ctx.connector.upstream.origin, ctx.path, forwardedQuery(ctx)), headers, body: ctx.body ?? Buffer.alloc(0) }
}

/** The headers keyvalet sets on a connector's requests after the approval: never part of the digest. */
function keyvaletHeaders(connector: Connector): Set<string> {
  return new Set([credentialSlot(connector).header, connector.assertion?.header, connector.attribution?.header].filter((h) => h !== undefined))
}

function urlOf(origin: string, path: string, query: string): string {
  return query === '' ? `${origin}${path}` : `${origin}${path}?${query}`
}

/** The body held whole for the approval: the one decide or attribute already holds, or read now. */
async function heldBody(ctx: AdmittedContext, limit: number): Promise<Buffer | undefined> {
  if (ctx.body !== undefined) {
    if (ctx.body.length > limit) throw new KeyvaletError('approval_body_too_large', { detail: { size: ctx.body.length, limit } })
    return ctx.body
  }
  if (!carriesBody(ctx.req.headers)) return undefined
  try {
    return await readBody(ctx.req, limit)
  } catch (err) {
    if (err instanceof KeyvaletError && err.code === 'body_too_large') throw new KeyvaletError('approval_body_too_large', { detail: err.detail ?? {} })
    throw err
  }
}

function denied(approval: Approval): KeyvaletError {
  const reason = approval.reason === undefined ? '' : safeText(approval.reason, REASON_LIMIT)
  return new KeyvaletError('approval_denied', {
    message: reason === '' ? `A person refused this request; it was not sent (approval ${approval.id}).` : `A person refused this request: ${reason} (approval ${approval.id}).`,
    detail: { approval: approval.id },
  })
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}
