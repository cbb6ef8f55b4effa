import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import { ProxyAgent, type Dispatcher } from 'undici'
import type { Connector } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import type { Vault } from '../vault/vault.ts'
import { AddressPolicy } from './address-policy.ts'
import { checkLiteral, createGuardedLookup } from './guarded-lookup.ts'
import type { NameResolver } from './resolver.ts'

/** How keyvalet's outbound connections are made, shared by upstream traffic (proxy/upstreams.ts) and token endpoints (credentials/token-http.ts). */

/**
 * TLS options for a connector's connections: always verified; its extra CA trusted in addition to
 * the system roots. Build once per connector and reuse: given `ca`, tls.connect would build a new
 * context from every root certificate on each new connection (milliseconds on the event loop).
 */
export function upstreamTls(connector: Connector): { rejectUnauthorized: true; secureContext?: SecureContext } {
  return { rejectUnauthorized: true, ...(connector.ca === undefined ? {} : { secureContext: createSecureContext({ ca: [...rootCertificates, connector.ca] }) }) }
}

/** The corporate proxy a connector's connections go through: its own, none (`none`), or the instance's. */
export function effectiveProxy(connector: Connector, instance: UpstreamProxy | undefined): UpstreamProxy | undefined {
  return connector.upstreamProxy === null ? undefined : (connector.upstreamProxy ?? instance)
}

/**
 * A dispatcher that reaches any origin through the corporate proxy: CONNECT for every request
 * (plain http too, so the proxy only ever sees tunnels), the proxy's address checked by the
 * egress guard, its credentials from the vault, TLS to the origin verified end to end by keyvalet.
 */
export async function proxyAgent(proxy: UpstreamProxy, tls: ProxyAgent.Options['requestTls'], common: Partial<ProxyAgent.Options>, opts: { resolver: NameResolver; vault: Vault }): Promise<Dispatcher> {
  const policy = new AddressPolicy({ allow: proxy.allowAddresses })
  checkLiteral(proxy.url.hostname.replace(/^\[(.*)\]$/, '$1'), policy)
  const token = proxy.secret === undefined ? undefined : `Basic ${(await opts.vault.open(proxy.secret)).toString('base64')}`
  return new ProxyAgent({
    ...common,
    uri: proxy.url.origin,
    ...(token === undefined ? {} : { token }),
    proxyTunnel: true,
    requestTls: tls,
    proxyTls: { lookup: createGuardedLookup({ resolver: opts.resolver, policy }) },
  })
}
