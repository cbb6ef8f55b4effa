import { CREDENTIAL_KINDS } from '../../credentials/registry.ts'
import { outboundRequestHeaders } from '../headers.ts'
import type { Stage } from '../pipeline.ts'

/**
 * inject: builds the outbound headers — the sandbox's own, stripped of hop-by-hop headers, every
 * credential slot and override headers — and only then sets the real credential.
 */
export function createInject(): Stage {
  return {
    name: 'inject',
    run(ctx) {
      const binding = ctx.connector?.credential
      const kind = binding === undefined ? undefined : CREDENTIAL_KINDS[binding.kind]
      const slot = binding === undefined || kind === undefined ? {} : kind.slot(binding)
      const outbound = { headers: outboundRequestHeaders(ctx.req.headers, slot.header), query: ctx.rawQuery ?? '' }
      if (slot.param !== undefined) {
        const params = new URLSearchParams(outbound.query)
        params.delete(slot.param)
        outbound.query = params.toString()
      }
      if (binding !== undefined && kind !== undefined && ctx.credential !== undefined) kind.inject(outbound, binding, ctx.credential.value)
      ctx.outbound = outbound
    },
  }
}
