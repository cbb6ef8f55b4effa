import { CREDENTIAL_KINDS } from '../../credentials/registry.ts'
import type { Vault } from '../../vault/vault.ts'
import type { Stage } from '../pipeline.ts'

/**
 * credential: opens the connector's secret from the vault, fresh on every request so that a
 * `secret set` takes effect at once. A missing or unreadable secret fails closed
 * (credential_unavailable): the request is never sent without its credential.
 */
export function createCredential(vault: Vault): Stage {
  return {
    name: 'credential',
    async run(ctx) {
      const binding = ctx.connector?.credential
      if (binding === undefined) return
      const value = (await vault.open(binding.secret)).toString('utf8')
      ctx.credential = { secret: binding.secret, value, echoForms: CREDENTIAL_KINDS[binding.kind].echoForms(binding, value) }
    },
  }
}
