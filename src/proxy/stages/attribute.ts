import { attributeBody } from '../../attribution/body.ts'
import type { UserValues } from '../../attribution/user-value.ts'
import { KeyvaletError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import type { OutboundContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'
import { readBody } from './decide.ts'
import { jsonBodyProblem, requestCarriesBody } from '../headers.ts'

/**
 * attribute: writes the invoking user (or their pseudonym) into the JSON body fields the
 * connector names, holding the body whole (bounded: body_too_large) so that forward sends the
 * rewritten bytes with their length. A body or header that already names another user is
 * refused (attribution_conflict), never overwritten; a body that is not a JSON object is refused
 * (attribution_body_invalid). Requests without a body have nothing to rewrite. Runs after decide
 * (the policy sees what the sandbox sent) and before the credential is fetched. Left out of the
 * stage list of a connector without `attribution`.
 */
export function createAttribute(values: UserValues, connector: Connector, maxBodyBytes: number): Stage | undefined {
  const options = connector.attribution
  if (options === undefined) return undefined
  return {
    name: 'attribute',
    async run(ctx) {
      const user = await values.for(options, ctx.session.user)
      if (options.header !== undefined) {
        const sent = ctx.req.headers[options.header]
        if (sent !== undefined && !(typeof sent === 'string' && user.same.has(sent))) throw conflict({ header: options.header })
      }
      if (options.bodyFields.length === 0 || (ctx.body === undefined && !requestCarriesBody(ctx.req))) return
      const body = ctx.body ?? (ctx.body = await readBody(ctx.req, maxBodyBytes))
      if (body.length === 0) return
      const why = jsonBodyProblem(ctx.req.headers, 'rewritten')
      if (why !== undefined) throw new KeyvaletError('attribution_body_invalid', { detail: { why } })
      const result = attributeBody(body, options.bodyFields, user.value, user.same)
      if ('invalid' in result) throw new KeyvaletError('attribution_body_invalid', { detail: { why: result.invalid } })
      if ('conflict' in result) throw conflict({ field: result.conflict })
      ctx.body = result.body
    },
  }
}

/** The attribution header, set on the outbound request after inject built it (again on a retry); only for a connector that names one. */
export function createAttributionHeader(values: UserValues, connector: Connector): Stage<OutboundContext> | undefined {
  const options = connector.attribution
  const header = options?.header
  if (options === undefined || header === undefined) return undefined
  return {
    name: 'attribute-header',
    async run(ctx) {
      ctx.outbound.headers[header] = (await values.for(options, ctx.session.user)).value
    },
  }
}

/** Names where the other user was found, never the value the sandbox sent. */
function conflict(where: { field?: string; header?: string }): KeyvaletError {
  return new KeyvaletError('attribution_conflict', { detail: where })
}
