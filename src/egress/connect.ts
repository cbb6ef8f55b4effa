import type { LookupFunction } from 'node:net'
import { AddressPolicy } from './address-policy.ts'
import { checkLiteral, createGuardedLookup } from './guarded-lookup.ts'
import type { NameResolver } from './resolver.ts'

/**
 * The one recipe for a connection keyvalet dials out (upstreams, tunnels, token endpoints, the
 * corporate proxy): the host is admitted before connecting (malformed names, odd IP encodings and
 * refused IP literals never reach net, which dials a literal without calling lookup), and the
 * guarded lookup checks every address a name resolves to when net dials it (guarded-lookup.ts
 * says why rebinding cannot slip in between). Nothing outside src/egress builds either half alone.
 */
export interface EgressGuard {
  /**
   * Checks a host about to be dialed and returns it as net wants it (an IPv6 literal without its
   * brackets). Throws KeyvaletError upstream_host_invalid or upstream_address_refused.
   */
  admit(host: string): string
  /** For net.connect / tls.connect / undici's `connect`: dials only addresses the policy allows. */
  readonly lookup: LookupFunction
}

export interface EgressGuardOptions {
  /** Ranges that are not public but allowed anyway (a connector's or tunnel's `allow_addresses`). */
  readonly allowAddresses: readonly string[]
  readonly resolver: NameResolver
}

export function egressGuard(opts: EgressGuardOptions): EgressGuard {
  const policy = new AddressPolicy({ allow: opts.allowAddresses })
  return {
    admit: (host) => {
      const bare = host.replace(/^\[(.*)\]$/, '$1')
      checkLiteral(bare, policy)
      return bare
    },
    lookup: createGuardedLookup({ resolver: opts.resolver, policy }),
  }
}

/**
 * `{ host, lookup }` for net.connect / tls.connect to reach `host` only at an allowed address.
 * Throws as `EgressGuard.admit` when the host itself is refused.
 */
export function guardedConnectOptions(host: string, opts: EgressGuardOptions): { host: string; lookup: LookupFunction } {
  const guard = egressGuard(opts)
  return { host: guard.admit(host), lookup: guard.lookup }
}

/**
 * What `admit` decides of `host` under `allowAddresses` without dialing or resolving anything:
 * an IP literal is judged now ('ip'); a name only when it is resolved, at dialing ('name').
 * Throws as `admit` when the host is refused. For explain.
 */
export function judgeHost(host: string, allowAddresses: readonly string[]): 'ip' | 'name' {
  return checkLiteral(host.replace(/^\[(.*)\]$/, '$1'), new AddressPolicy({ allow: allowAddresses })).kind
}
