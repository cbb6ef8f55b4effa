import Type from 'typebox'
import { ADMIN_ROLES } from '../../model/admin-token.ts'
import { loadOrCreateCa } from '../../tls/ca-store.ts'
import { baseCertificates, trustBundle } from '../../tls/trust-bundle.ts'
import type { AdminDeps } from '../deps.ts'
import { defineRoute } from '../route.ts'

const QUERY = Type.Object({
  base: Type.Optional(Type.Union([Type.Literal('system'), Type.Literal('node'), Type.Literal('none')], {
    description: "Which public CAs follow keyvalet's: this machine's (system, the default), the Mozilla list built into Node (node), or none (keyvalet's CA alone).",
  })),
}, { additionalProperties: false })

/**
 * The CA bundle a sandbox trusts, for an orchestrator that is not on keyvalet's host: what
 * `keyvalet ca bundle` (or `ca export`, with base=none) prints. Certificates only, all public.
 */
export function caRoutes(deps: AdminDeps) {
  return [
    defineRoute({
      method: 'GET', path: '/v1/ca-bundle', roles: ADMIN_ROLES, action: 'ca.bundle', query: QUERY,
      summary: "The CA bundle sandboxes trust (PEM): keyvalet's interception CA first, then the chosen public CAs, each once.",
      async handle({ query }) {
        const { ca } = await loadOrCreateCa(deps.vault)
        const base = query.base ?? 'system'
        const bundle = trustBundle(ca.certPem, base === 'none' ? [] : baseCertificates(base))
        return { kind: 'text', contentType: 'application/x-pem-file', body: bundle.pem }
      },
    }),
  ]
}
