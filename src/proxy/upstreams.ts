import type { Dispatcher } from 'undici'
import { connectorDispatcher } from '../egress/dispatch.ts'
import type { NameResolver } from '../egress/resolver.ts'

import type { Connector } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import type { Vault } from '../vault/vault.ts'

export interface UpstreamsOptions {
  readonly headersTimeoutMs: number
  readonly resolver: NameResolver
  /** The instance's corporate proxy, used by connectors that do not set their own. */
  readonly upstreamProxy: UpstreamProxy | undefined
  /** For the corporate proxy's own credentials. */
  readonly vault: Vault
}

/**
 * One keep-alive dispatcher per connector, built on first use. TLS to the upstream is always
 * verified; a connector's extra CA is trusted in addition to the system roots, never instead of
 * them. Redirects are never followed: undici does not follow them unless asked to.
 *
 * Direct connections are dialed through the egress guard: keyvalet's own resolver, addresses
 * outside the connector's `allow_addresses` that are not public are refused, and net dials exactly
 * the address that was checked (no second lookup, so DNS rebinding cannot slip in). An IP-literal
 * upstream, which net dials without any lookup, is checked here. Through a corporate proxy, the
 * guard checks the proxy's address; the proxy resolves the upstream's name itself.
 */
export class Upstreams {
  // By Connector object: a reload that changes a connector gives it a new object, and a new pool.
  readonly #dispatchers = new Map<Connector, Promise<Dispatcher>>()
  readonly #opts: UpstreamsOptions

  constructor(opts: UpstreamsOptions) {
    this.#opts = opts
  }

  /** The connector's dispatcher; rejects with the egress refusal when its upstream address is not allowed. */
  dispatcher(connector: Connector): Promise<Dispatcher> {
    let dispatcher = this.#dispatchers.get(connector)
    if (dispatcher === undefined) {
      const created = create(connector, this.#opts)
      // A failure is not kept: the next request tries again (e.g. once the proxy's secret is set).
      created.catch(() => {
        if (this.#dispatchers.get(connector) === created) this.#dispatchers.delete(connector)
      })
      this.#dispatchers.set(connector, created)
      dispatcher = created
    }
    return dispatcher
  }

  /**
   * Builds every connector's dispatcher now (TLS contexts, proxy credentials), so the first
   * request to each pays nothing for it. Failures stay with their connector and surface, as the
   * same refusal, on each of its requests.
   */
  async warm(connectors: Iterable<Connector>): Promise<void> {
    await Promise.allSettled([...connectors].map((c) => this.dispatcher(c)))
  }

  /**
   * Closes a connector's pool once no request can use it any more (a reload changed or removed the
   * connector and the requests that started before it are over): its idle connections close.
   */
  release(connector: Connector): void {
    const dispatcher = this.#dispatchers.get(connector)
    this.#dispatchers.delete(connector)
    void dispatcher?.then((d) => d.close()).catch(() => {})
  }

  /** Called once the listeners have drained: nothing is in flight any more. */
  async destroy(): Promise<void> {
    const all = await Promise.allSettled([...this.#dispatchers.values()])
    await Promise.all(all.flatMap((r) => (r.status === 'fulfilled' ? [r.value.destroy()] : [])))
  }
}

function create(connector: Connector, opts: UpstreamsOptions): Promise<Dispatcher> {
  // Bounded so one connector cannot exhaust file descriptors; requests beyond it wait (bounded by
  // the upstream timeout) for a connection to free up.
  const common = { connections: 1024, keepAliveTimeout: 30_000, headersTimeout: opts.headersTimeoutMs, bodyTimeout: 0 } // streams (SSE) may be quiet for long
  return connectorDispatcher(connector, { common, resolver: opts.resolver, upstreamProxy: opts.upstreamProxy, vault: opts.vault, origin: connector.upstream })
}
