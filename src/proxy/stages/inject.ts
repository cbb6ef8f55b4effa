import { credentialKind } from '../../credentials/registry.ts'
import type { OutboundRequest } from '../../credentials/kind.ts'
import { withoutParam } from '../../credentials/query-param.ts'
import { outboundRequestHeaders, requestCarriesBody } from '../headers.ts'
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
      const connector = ctx.connector
      const binding = connector.credential
      const kind = binding === undefined ? undefined : credentialKind(binding.kind)
      const slot = binding === undefined || kind === undefined ? {} : kind.slot(binding)
      const outbound: OutboundRequest = {
        method: ctx.req.method ?? 'GET',
        origin: connector.upstream.origin,
        path: ctx.path,
        body: ctx.body,
        bodyStreams: ctx.body === undefined && requestCarriesBody(ctx.req),
        copySourceDecided: ctx.copySource !== undefined,
        headers: outboundRequestHeaders(ctx.req.headers, [slot.header, connector.assertion?.header], constrainedHeaders(ctx)),
        query: slot.param === undefined ? ctx.rawQuery ?? '' : withoutParam(ctx.rawQuery ?? '', slot.param),
      }
      // Before the credential: a kind that signs headers (aws_sigv4) signs these too.
      outbound.headers.traceparent = traceparent(ctx.trace)
      if (!ctx.trace.continued) delete outbound.headers.tracestate
      if (binding !== undefined && kind !== undefined && ctx.credential !== undefined) kind.inject(outbound, binding, ctx.credential.value)
      ctx.outbound = outbound
    },
  }
}

/** The header names the allowing rule constrains: its constraint checked them, so they may go upstream. */
function constrainedHeaders(ctx: AdmittedContext): ReadonlySet<string> {
  const decision = ctx.decision
  return new Set(decision?.effect === 'allow' ? decision.rule.headers.map((c) => c.name) : [])
}
