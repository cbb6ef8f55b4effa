import { credentialKind } from '../../credentials/registry.ts'
import type { CredentialSlot, OutboundRequest } from '../../credentials/kind.ts'
import type { Connector } from '../../model/policy.ts'
import { withoutParam } from '../../credentials/query-param.ts'
import { carriesBody, outboundRequestHeaders } from '../headers.ts'
import type { AdmittedContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'
import { traceparent } from '../trace.ts'

/**
 * inject: builds the outbound headers — the sandbox's own, stripped of hop-by-hop headers, every
 * credential slot and routing headers (but those the allowing rule constrains) — and the query,
 * stripped of every spelling of the credential parameter (query-param.ts), and only then sets the
 * real credential, and the W3C `traceparent` naming keyvalet's span (trace.ts). Runs again, from
 * the sandbox's headers, when a request is retried with a refreshed credential.
 */
export function createInject(): Stage {
  return {
    name: 'inject',
    run(ctx) {
      const binding = ctx.connector.credential
      const kind = binding === undefined ? undefined : credentialKind(binding.kind)
      const outbound: OutboundRequest = {
        method: ctx.req.method ?? 'GET',
        origin: ctx.connector.upstream.origin,
        path: ctx.path,
        body: ctx.body,
        bodyStreams: ctx.body === undefined && carriesBody(ctx.req.headers),
        copySourceDecided: ctx.copySource !== undefined,
        headers: forwardedHeaders(ctx),
        query: forwardedQuery(ctx),
      }
      // Before the credential: a kind that signs headers (aws_sigv4) signs these too.
      outbound.headers.traceparent = traceparent(ctx.trace)
      if (binding !== undefined && kind !== undefined && ctx.credential !== undefined) kind.inject(outbound, binding, ctx.credential.value)
      ctx.outbound = outbound
    },
  }
}

/** Where the connector's credential goes (none without a credential). */
export function credentialSlot(connector: Connector): CredentialSlot {
  const binding = connector.credential
  return binding === undefined ? {} : credentialKind(binding.kind).slot(binding)
}

/** The sandbox's headers as they will be forwarded, before keyvalet adds its own (traceparent, the credential). */
export function forwardedHeaders(ctx: AdmittedContext): Record<string, string | string[]> {
  const headers = outboundRequestHeaders(ctx.req.headers, [credentialSlot(ctx.connector).header, ctx.connector.assertion?.header], constrainedHeaders(ctx))
  // A tracestate belongs to the trace its traceparent names: kept only when keyvalet continues that trace.
  if (!ctx.trace.continued) delete headers.tracestate
  return headers
}

/** The query as it will be forwarded, before the credential: every spelling of the credential parameter removed. */
export function forwardedQuery(ctx: AdmittedContext): string {
  const param = credentialSlot(ctx.connector).param
  return param === undefined ? ctx.rawQuery : withoutParam(ctx.rawQuery, param)
}

/** The header names the allowing rule constrains: its constraint checked them, so they may go upstream. */
function constrainedHeaders(ctx: AdmittedContext): ReadonlySet<string> {
  const decision = ctx.decision
  return new Set(decision?.effect === 'allow' ? decision.rule.headers.map((c) => c.name) : [])
}
