import { rootCertificates } from 'node:tls'
import { Pool } from 'undici'
import type { Connector, Policy } from '../policy/types.ts'

/**
 * One keep-alive connection pool per connector, built once at start. TLS is always verified; a
 * connector's extra CA is trusted in addition to the system roots, never instead of them.
 * Redirects are never followed: undici does not follow them unless asked to.
 */
export class Upstreams {
  readonly #pools = new Map<string, Pool>()

  constructor(policy: Policy, opts: { headersTimeoutMs: number }) {
    for (const connector of policy.connectors.values()) this.#pools.set(connector.name, createPool(connector, opts.headersTimeoutMs))
  }

  pool(connector: Connector): Pool {
    const pool = this.#pools.get(connector.name)
    if (pool === undefined) throw new Error(`no pool for connector ${connector.name}`)
    return pool
  }

  /** Called once the listener has drained: nothing is in flight any more. */
  async destroy(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.destroy()))
  }
}

function createPool(connector: Connector, headersTimeoutMs: number): Pool {
  const ca = connector.ca === undefined ? undefined : [...rootCertificates, connector.ca]
  return new Pool(connector.upstream.origin, {
    connections: 256,
    keepAliveTimeout: 30_000,
    headersTimeout: headersTimeoutMs,
    bodyTimeout: 0, // streams (SSE) may be quiet for long; the client controls their lifetime
    connect: { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) },
  })
}
