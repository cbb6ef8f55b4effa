/**
 * keyvalet resolves upstream names itself, by DNS only: node:dns `Resolver` (c-ares) resolve4 +
 * resolve6, never getaddrinfo (`dns.lookup`).
 *
 * Trade-off: getaddrinfo would honour /etc/hosts, nsswitch, mDNS and whatever else the host is
 * configured with — none of which keyvalet's policy can see, and some of which a process sharing
 * the host could influence. Querying DNS servers directly means one source of truth, answers with
 * TTLs, and explicit servers in tests. The price: /etc/hosts entries do not apply to upstreams
 * (an operator who needs a fixed address adds it to DNS, or names the IP literal and allows its
 * CIDR), and only the servers in resolv.conf (or `servers`) are consulted. If resolv.conf points
 * at a local stub (systemd-resolved 127.0.0.53), that stub's own configuration still applies.
 *
 * Resolving is not checking: every address returned here must still pass AddressPolicy, and the
 * caller must dial exactly the address it checked (see guarded-lookup.ts).
 *
 * Callers should resolve only names the policy has already accepted as a connector's (or a
 * pass-through) host; resolving sandbox-chosen names would turn keyvalet into a DNS exfiltration
 * channel (`<secret>.attacker.example`).
 */
import { promises as dnsPromises } from 'node:dns'
import { EgressError } from './egress-error.ts'

export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** What guarded-lookup needs; Resolver implements it, tests may fake it. */
export interface NameResolver {
  resolve(name: string): Promise<readonly ResolvedAddress[]>
}

export interface ResolverOptions {
  /** DNS servers as 'ip' or 'ip:port' ('[::1]:53' for IPv6); default: the system's resolv.conf. */
  readonly servers?: readonly string[]
  /** Upper bound for one resolve(), both families together. Default 2000 ms. */
  readonly timeoutMs?: number
  /** Milliseconds since the epoch; drives the answer cache. Default Date.now. */
  readonly clock?: () => number
  /** Positive answers cached at most this many entries (oldest evicted). Default 1024; 0 disables. */
  readonly cacheSize?: number
  /** TTLs above this are shortened to it. Default 300 s. */
  readonly maxTtlSeconds?: number
}

interface CacheEntry {
  readonly addresses: readonly ResolvedAddress[]
  readonly expiresAt: number
}

type Family = { ok: true; records: { address: string; ttl: number }[] } | { ok: false; code: string }

/** c-ares codes that say "this name has no records of this type": a definite, empty answer. */
const EMPTY_CODES = new Set(['ENODATA', 'ENOTFOUND'])

export class Resolver implements NameResolver {
  readonly #resolver: InstanceType<typeof dnsPromises.Resolver>
  readonly #timeoutMs: number
  readonly #clock: () => number
  readonly #cacheSize: number
  readonly #maxTtlMs: number
  readonly #cache = new Map<string, CacheEntry>()
  /** Concurrent resolves of one name share one pair of queries. */
  readonly #inflight = new Map<string, Promise<readonly ResolvedAddress[]>>()

  constructor(options: ResolverOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 2000
    if (!(Number.isFinite(this.#timeoutMs) && this.#timeoutMs > 0)) throw new Error(`resolver timeoutMs must be a positive number, got ${options.timeoutMs}`)
    this.#clock = options.clock ?? Date.now
    this.#cacheSize = Math.max(0, Math.floor(options.cacheSize ?? 1024))
    this.#maxTtlMs = Math.max(0, options.maxTtlSeconds ?? 300) * 1000
    // One try per server, c-ares' own per-try timeout equal to ours: the query ends on its own
    // shortly after our guard timer fires, so nothing lingers.
    this.#resolver = new dnsPromises.Resolver({ timeout: Math.ceil(this.#timeoutMs), tries: 1 })
    if (options.servers !== undefined) {
      if (options.servers.length === 0) throw new Error('resolver servers must not be empty (omit it to use the system resolver)')
      this.#resolver.setServers([...options.servers]) // throws on anything that is not ip[:port]
    }
  }

  /**
   * IPv4 answers first, then IPv6, each in the server's order. Rejects with an EgressError
   * (KEYVALET_DNS_FAILED) when neither family yields an address. `name` must already be a valid,
   * lower-case DNS name (classifyHost).
   */
  resolve(name: string): Promise<readonly ResolvedAddress[]> {
    const key = name.toLowerCase()
    const cached = this.#cache.get(key)
    if (cached !== undefined) {
      if (this.#clock() < cached.expiresAt) {
        // Refresh recency (Map order is the eviction order).
        this.#cache.delete(key)
        this.#cache.set(key, cached)
        return Promise.resolve(cached.addresses)
      }
      this.#cache.delete(key)
    }
    const running = this.#inflight.get(key)
    if (running !== undefined) return running
    const p = this.#query(key).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, p)
    return p
  }

  /** Drops every cached answer (e.g. on configuration reload). */
  clear(): void {
    this.#cache.clear()
  }

  get cacheEntries(): number {
    return this.#cache.size
  }

  async #query(name: string): Promise<readonly ResolvedAddress[]> {
    const started = this.#clock()
    let timer: NodeJS.Timeout | undefined
    const guard = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs)
    })
    // A trailing dot makes the query absolute: resolv.conf `search` domains never apply.
    const absolute = `${name}.`
    const both = Promise.all([
      settle(this.#resolver.resolve4(absolute, { ttl: true })),
      settle(this.#resolver.resolve6(absolute, { ttl: true })),
    ])
    let outcome: [Family, Family] | 'timeout'
    try {
      outcome = await Promise.race([both, guard])
    } finally {
      clearTimeout(timer)
    }
    if (outcome === 'timeout') {
      throw new EgressError('KEYVALET_DNS_FAILED', { why: 'dns_failed', host: name, reason: 'timeout', dnsCode: 'ETIMEOUT' })
    }
    const [v4, v6] = outcome
    const addresses: ResolvedAddress[] = []
    let minTtl = Number.POSITIVE_INFINITY
    for (const [result, family] of [[v4, 4], [v6, 6]] as const) {
      if (!result.ok) continue
      for (const r of result.records) {
        addresses.push({ address: r.address, family })
        minTtl = Math.min(minTtl, r.ttl)
      }
    }
    if (addresses.length === 0) {
      const failure = [v4, v6].find((r): r is { ok: false; code: string } => !r.ok && !EMPTY_CODES.has(r.code))
      const code = failure?.code ?? (!v4.ok && v4.code === 'ENOTFOUND' ? 'ENOTFOUND' : !v6.ok ? v6.code : 'ENODATA')
      throw new EgressError('KEYVALET_DNS_FAILED', { why: 'dns_failed', host: name, reason: reasonFor(code), dnsCode: code })
    }
    // Cache only complete answers: if one family failed for a transient reason, ask again next time.
    const complete = [v4, v6].every((r) => r.ok || EMPTY_CODES.has(r.code))
    const ttlMs = Math.min(minTtl * 1000, this.#maxTtlMs)
    if (complete && this.#cacheSize > 0 && ttlMs > 0) {
      while (this.#cache.size >= this.#cacheSize) {
        const oldest = this.#cache.keys().next()
        if (oldest.done === true) break
        this.#cache.delete(oldest.value)
      }
      this.#cache.set(name, { addresses, expiresAt: started + ttlMs })
    }
    return addresses
  }
}

async function settle(p: Promise<{ address: string; ttl: number }[]>): Promise<Family> {
  try {
    return { ok: true, records: await p }
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'EUNKNOWN'
    return { ok: false, code }
  }
}

function reasonFor(code: string): string {
  switch (code) {
    case 'ENOTFOUND': return 'nxdomain'
    case 'ENODATA': return 'no_data'
    case 'ETIMEOUT': return 'timeout'
    case 'ESERVFAIL': return 'servfail'
    case 'EREFUSED': return 'refused'
    case 'ECONNREFUSED': return 'server_unreachable'
    default: return 'error'
  }
}
