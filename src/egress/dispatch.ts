import { createSecureContext, rootCertificates, type SecureContext, type TLSSocket } from 'node:tls'
import { Agent, buildConnector, Pool, ProxyAgent, type Dispatcher } from 'undici'
import type { Connector } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import type { Vault } from '../vault/vault.ts'
import { egressGuard } from './connect.ts'
import type { NameResolver } from './resolver.ts'

/** How keyvalet's outbound connections are made, shared by upstream traffic (proxy/upstreams.ts) and token endpoints (credentials/token-http.ts). */

/**
 * TLS options for a connector's connections: always verified; its extra CA trusted in addition to
 * the system roots. Given `ca`, tls.connect would build a new context from every root certificate
 * on each new connection (milliseconds on the event loop), so the context is built once and reused.
 */
export function upstreamTls(connector: Pick<Connector, 'ca'>): { rejectUnauthorized: true; secureContext?: SecureContext } {
  return { rejectUnauthorized: true, ...(connector.ca === undefined ? {} : { secureContext: trustingAlso(connector.ca) }) }
}

/**
 * One secure context per extra CA, shared by every connector (and token endpoint) that names it:
 * each context holds its own parsed copy of every root certificate, ~0.9 MiB of native memory, so
 * 45 connectors naming one corporate CA held ~40 MiB for what one context states. A context is
 * immutable once built, and OpenSSL never looks a client's session up in it by itself (undici's
 * session cache is per pool), so connectors that share it share the trust it states and nothing
 * else. Held weakly: a CA no dispatcher uses any more lets its context go.
 */
const contexts = new Map<string, WeakRef<SecureContext>>()
const collected = new FinalizationRegistry<string>((ca) => {
  if (contexts.get(ca)?.deref() === undefined) contexts.delete(ca)
})

function trustingAlso(ca: string): SecureContext {
  const kept = contexts.get(ca)?.deref()
  if (kept !== undefined) return kept
  const context = createSecureContext({ ca: [...rootCertificates, ca] })
  contexts.set(ca, new WeakRef(context))
  collected.register(context, ca)
  return context
}

/** The corporate proxy a connector's connections go through: its own, none (`none`), or the instance's. */
export function effectiveProxy(connector: Connector, instance: UpstreamProxy | undefined): UpstreamProxy | undefined {
  return connector.upstreamProxy === null ? undefined : (connector.upstreamProxy ?? instance)
}

export interface ConnectorDispatcherOptions {
  /** Pool and timeout settings of the caller (undici options). */
  readonly common: Partial<Pool.Options>
  readonly resolver: NameResolver
  /** The instance's corporate proxy, for connectors that do not set their own. */
  readonly upstreamProxy: UpstreamProxy | undefined
  /** For the corporate proxy's own credentials; needed only when there is a proxy. */
  readonly vault: Vault | undefined
  /** A pool for this one origin (its host admitted now); without it, an agent for any origin, whose hosts the caller admits. */
  readonly origin?: URL
}

/**
 * A connector's dispatcher: through its corporate proxy when it has one, else direct with the
 * egress guard on every dial (connect.ts). TLS per `upstreamTls`.
 */
export async function connectorDispatcher(connector: Connector, opts: ConnectorDispatcherOptions): Promise<Dispatcher> {
  const tls = upstreamTls(connector)
  const proxy = effectiveProxy(connector, opts.upstreamProxy)
  if (proxy !== undefined) {
    if (opts.vault === undefined) throw new Error('a corporate proxy needs the vault for its credentials')
    return proxyAgent(proxy, tls, opts.common, { resolver: opts.resolver, vault: opts.vault })
  }
  const guard = egressGuard({ allowAddresses: connector.allowAddresses, resolver: opts.resolver })
  const connect = { ...tls, lookup: guard.lookup }
  const http = connector.upstreamHttp ?? 'auto'
  if (opts.origin === undefined) return new Agent({ ...opts.common, connect, allowH2: http !== 'h1' })
  guard.admit(opts.origin.hostname)
  if (http === 'h2') return new Pool(opts.origin.origin, { ...opts.common, connect: h2Only(connect, opts.origin.protocol === 'http:') })
  return new Pool(opts.origin.origin, { ...opts.common, connect, allowH2: http === 'auto' })
}

/**
 * upstream_http: h2. Offers h2 first and takes only a connection on which it was chosen (over
 * http://, prior knowledge): an upstream that answers the handshake with HTTP/1.1 is refused.
 */
function h2Only(options: buildConnector.BuildOptions, cleartext: boolean): buildConnector.connector {
  // useH2c (prior knowledge over http://) is an option of undici's connector its types do not list yet.
  const withH2c: buildConnector.BuildOptions & { useH2c: boolean } = { ...options, allowH2: true, preferH2: true, useH2c: cleartext }
  const connect = buildConnector(withH2c)
  return (opts, callback) => connect(opts, (err, socket) => {
    if (err !== null) return callback(err, null)
    if (opts.protocol === 'https:' && (socket as TLSSocket).alpnProtocol !== 'h2') {
      socket.destroy()
      return callback(Object.assign(new Error('the upstream did not choose HTTP/2 (upstream_http: h2)'), { code: 'UPSTREAM_NOT_H2' }), null)
    }
    callback(null, socket)
  })
}

/**
 * A dispatcher that reaches any origin through the corporate proxy: CONNECT for every request
 * (plain http too, so the proxy only ever sees tunnels), the proxy's address checked by the
 * egress guard, its credentials from the vault, TLS to the origin verified end to end by keyvalet.
 */
export async function proxyAgent(proxy: UpstreamProxy, tls: ProxyAgent.Options['requestTls'], common: Partial<ProxyAgent.Options>, opts: { resolver: NameResolver; vault: Vault }): Promise<Dispatcher> {
  const guard = egressGuard({ allowAddresses: proxy.allowAddresses, resolver: opts.resolver })
  guard.admit(proxy.url.hostname)
  const token = proxy.secret === undefined ? undefined : `Basic ${(await opts.vault.open(proxy.secret)).toString('base64')}`
  return new ProxyAgent({
    ...common,
    uri: proxy.url.origin,
    ...(token === undefined ? {} : { token }),
    proxyTunnel: true,
    requestTls: tls,
    proxyTls: { lookup: guard.lookup },
  })
}
