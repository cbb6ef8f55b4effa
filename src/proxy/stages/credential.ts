import { CREDENTIAL_KINDS } from '../../credentials/registry.ts'
import type { RequestContext } from '../context.ts'
import type { Vault } from '../../vault/vault.ts'
import type { Stage } from '../pipeline.ts'

type Prepared = NonNullable<RequestContext['credential']>

/**
 * credential: opens the connector's secret from the vault, fresh on every request so that a
 * `secret set` takes effect at once. A missing or unreadable secret fails closed
 * (credential_unavailable): the request is never sent without its credential.
 */
export function createCredential(vault: Vault): Stage {
  // The text and redaction forms of the last value seen per connector, reused while the value is unchanged.
  const prepared = new Map<string, { readonly raw: Buffer; readonly credential: Prepared }>()
  return {
    name: 'credential',
    async run(ctx) {
      const connector = ctx.connector
      const binding = connector?.credential
      if (connector === undefined || binding === undefined) return
      const raw = await vault.open(binding.secret)
      const last = prepared.get(connector.name)
      if (last !== undefined && last.raw.equals(raw)) {
        ctx.credential = last.credential
        return
      }
      const value = raw.toString('utf8')
      const credential = { secret: binding.secret, value, echoForms: CREDENTIAL_KINDS[binding.kind].echoForms(binding, value) }
      prepared.set(connector.name, { raw, credential })
      ctx.credential = credential
    },
  }
}
