import { createHash } from 'node:crypto'
import type { SandboxRequest } from '../exchange.ts'
import { KeyvaletError } from '../../errors.ts'
import type { BodyFacts, Decision } from '../../policy/decision.ts'
import { decide } from '../../policy/decide.ts'
import { parseStrictJson } from '../../policy/strict-json.ts'
import { severityRank, SEVERITIES } from '../../model/policy.ts'
import type { AdmittedContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'
import { jsonBodyProblem, requestCarriesBody } from '../headers.ts'

/**
 * decide: asks the pure policy function; reads the body (bounded) only when a rule's JSON Schema
 * needs it and the grant already covers the request. Denials become policy_denied with the reason,
 * or, under a connector or rule in report mode, ctx.wouldDeny (and the request goes on).
 */
export function createDecide(maxBodyBytes: number): Stage {
  return {
    name: 'decide',
    async run(ctx) {
      let decision = decideFor(ctx, undefined)
      let facts: BodyFacts | undefined
      if (decision.effect === 'need_body') {
        const body = await readBody(ctx.req, maxBodyBytes)
        ctx.body = body
        facts = bodyFacts(ctx.req, body)
        ctx.decidedBody = { digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, json: 'json' in facts ? facts.json : undefined }
        decision = decideFor(ctx, facts)
      }
      ctx.decision = decision
      // Report mode: the refusal is recorded, not enforced. A malformed request is refused in either mode.
      if (decision.effect === 'deny' && decision.reason !== 'body_unexpected' && (decision.rule?.report === true || ctx.connector.report === true)) {
        ctx.wouldDeny = { reason: decision.reason, rule: decision.rule?.id ?? null, why: decision.detail }
        return
      }
      if (decision.effect === 'deny') {
        // A body where the method takes none is malformed input (400), not a matter of the grant.
        throw new KeyvaletError(decision.reason === 'body_unexpected' ? 'body_unexpected' : 'policy_denied', {
          message: denyMessage(decision, ctx, facts),
          detail: { reason: decision.reason, rule: decision.rule?.id ?? null, why: decision.detail, ...(decision.header === undefined ? {} : { header: decision.header }) },
        })
      }
      if (decision.effect === 'need_body') throw new Error('decide asked for the body twice')
    },
  }
}

function decideFor(ctx: AdmittedContext, body: BodyFacts | undefined): Decision {
  return decide({
    connector: ctx.connector,
    grants: ctx.session.grants,
    method: ctx.req.method ?? 'GET',
    segments: ctx.segments,
    query: new URLSearchParams(ctx.rawQuery),
    headers: ctx.req.headers,
    carriesBody: requestCarriesBody(ctx.req),
    ...(body === undefined ? {} : { body }),
    ...(ctx.upgrade === undefined ? {} : { upgrade: ctx.upgrade }),
  })
}

/** What the sandbox is told: safe to show (names and severities, never a value it sent), ending in the reason. */
function denyMessage(decision: Extract<Decision, { effect: 'deny' }>, ctx: AdmittedContext, facts: BodyFacts | undefined): string {
  const { reason } = decision
  const method = ctx.req.method ?? 'GET'
  switch (reason) {
    case 'no_rule_for_path': return `Connector ${ctx.connector.name} has no rule for this path; the request was refused (${reason}).`
    case 'method_not_allowed': return `${method} is not allowed on this path (${reason}).`
    case 'not_in_grant': return `This task's grant does not cover this request (${reason}).`
    case 'severity_exceeds_grant': {
      // The grants that name the rule: another grant's higher severity for other rules is not the story.
      const rule = decision.rule?.id ?? ''
      const inScope = ctx.session.grants.filter((g) => g.connector === ctx.connector.name && (g.rules === undefined || g.rules.includes(rule)))
      const granted = inScope.map((g) => severityRank(g.maxSeverity))
      const max = granted.length === 0 ? 'none' : SEVERITIES[Math.max(...granted)]
      return `This request needs ${decision.rule?.severity}; the task was granted ${max} on connector ${ctx.connector.name} (${reason}).`
    }
    case 'query_not_allowed': return `The query parameters are not allowed by the matching rule (${reason}).`
    case 'header_not_allowed': return `A request header is not allowed by the matching rule (${reason}).`
    case 'header_not_named': return `The ${decision.header ?? 'request'} header changes what the upstream does, and no rule allowing this request names it (${reason}).`
    case 'body_not_allowed':
      // Every body failure is the JSON itself when the body could not be read as JSON.
      if (facts !== undefined && 'invalid' in facts) return `The request body is not valid JSON (${facts.invalid}); the matching rule checks it against a schema (${reason}).`
      return `The request body does not have the shape the matching rule requires (${reason}).`
    case 'upgrade_not_allowed': return `The matching rule does not allow this protocol upgrade (${reason}).`
    case 'body_unexpected': return `${method} takes no request body under the matching rule; send the request without one (${reason}).`
  }
}

function bodyFacts(req: SandboxRequest, body: Buffer): BodyFacts {
  const problem = jsonBodyProblem(req.headers, 'checked')
  return problem === undefined ? parseStrictJson(body) : { invalid: problem }
}

/** Reads the whole body, refusing (body_too_large) as soon as it passes the limit. */
export async function readBody(req: SandboxRequest, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw new KeyvaletError('body_too_large', { detail: { declared, limit } })
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new KeyvaletError('body_too_large', { detail: { limit } })
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}
