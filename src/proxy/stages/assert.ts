import type { AssertionKeys } from '../../assertion/keys.ts'
import type { Connector } from '../../model/policy.ts'
import type { OutboundContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'

/**
 * assert: adds the connector's signed user assertion (a JWT naming the session's user, agent,
 * workspace, task and session) to the outbound request, after inject has built its headers
 * without the sandbox's own value of that header. A fresh token (new jti) per request, also when
 * a request is retried after a 401. Fails closed when no key can be had (credential_unavailable).
 * Left out of the stage list of a connector without `assertion`.
 */
export function createAssert(keys: AssertionKeys, connector: Connector): Stage<OutboundContext> | undefined {
  const options = connector.assertion
  if (options === undefined) return undefined
  return {
    name: 'assert',
    async run(ctx) {
      const { session, outbound } = ctx
      const { token, kid, jti } = await keys.sign({
        issuer: options.issuer,
        audience: options.audience,
        ttlSeconds: options.ttlSeconds,
        subject: session.user,
        // RFC 8693 §4.1: the agent is the actor on behalf of the subject (the user).
        claims: { act: { sub: session.agent }, workspace: session.workspace, task: session.task, sid: session.id },
      })
      outbound.headers[options.header] = token
      ctx.assertion = { kid, jti, token }
    },
  }
}
