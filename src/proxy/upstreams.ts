import { rootCertificates } from 'node:tls'
import { Pool } from 'undici'
import { AddressPolicy } from '../egress/address-policy.ts'
import { checkLiteral, createGuardedLookup } from '../egress/guarded-lookup.ts'
import type { NameResolver } from '../egress/resolver.ts'
import { KeyvaletError } from '../errors.ts'
import type { Connector, Policy } from '../policy/types.ts'

/**
 * One keep-alive connection pool per connector, built once at start. TLS is always verified; a
 * connector's extra CA is trusted in addition to the system roots, never instead of them.
 * Redirects are never followed: undici does not follow them unless asked to.
 *
 * Every connection is dialed through the egress guard: the host name is resolved by keyvalet's
 * own resolver, addresses outside the connector's `allow_addresses` that are not public are
 * refused, and net dials exactly the address that was checked (no second lookup, so DNS
 * rebinding cannot slip in). An IP-literal upstream, which net dials without any lookup, is
 * checked here once.
 */
export class Upstreams {
  readonly #pools = new Map<string, Pool | KeyvaletError>()

  constructor(policy: Policy, opts: { headersTimeoutMs: number; resolver: NameResolver }) {
    for (const connector of policy.connectors.values()) this.#pools.set(connector.name, createPool(connector, opts))
  }

  /** The connector's pool; throws the egress refusal when its upstream address is not allowed. */
  pool(connector: Connector): Pool {
    const pool = this.#pools.get(connector.name)
    if (pool === undefined) throw new Error(`no pool for connector ${connector.name}`)
    if (pool instanceof KeyvaletError) throw pool
    return pool
  }

  /** Called once the listeners have drained: nothing is in flight any more. */
  async destroy(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => (p instanceof Pool ? p.destroy() : undefined)))
  }
}

function createPool(connector: Connector, opts: { headersTimeoutMs: number; resolver: NameResolver }): Pool | KeyvaletError {
  const policy = new AddressPolicy({ allow: connector.allowAddresses })
  try {
    checkLiteral(connector.upstream.hostname.replace(/^\[(.*)\]$/, '$1'), policy)
  } catch (err) {
    if (err instanceof KeyvaletError) return err
    throw err
  }
  const ca = connector.ca === undefined ? undefined : [...rootCertificates, connector.ca]
  return new Pool(connector.upstream.origin, {
    connections: 256,
    keepAliveTimeout: 30_000,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: 0, // streams (SSE) may be quiet for long; the client controls their lifetime
    connect: {
      rejectUnauthorized: true,
      lookup: createGuardedLookup({ resolver: opts.resolver, policy }),
      ...(ca === undefined ? {} : { ca }),
    },
  })
}
