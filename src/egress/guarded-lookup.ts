/**
 * The egress guard for every upstream connection: a `lookup` function for `net.connect` /
 * `tls.connect` (and so undici's `connect: { lookup }`) that resolves the name with keyvalet's own
 * Resolver, drops every address AddressPolicy refuses, and hands net only allowed addresses.
 *
 * Why DNS rebinding between check and dial cannot happen: net.connect dials exactly the address
 * (or, with autoSelectFamily, exactly the list of addresses) that its `lookup` callback returns;
 * it never resolves the name again. The address checked here is therefore the address dialed —
 * there is no second lookup for a rebinding DNS server to answer differently. A later connection
 * calls lookup again and is checked again on its own. (The Resolver's cache only ever shortens the
 * window in which an answer is reused; it cannot widen what is allowed.)
 *
 * net.connect does NOT call lookup when the host is already an IP literal, so callers must check
 * literals themselves with `checkLiteral` — before connecting, on the raw host they received.
 */
import type { LookupAddress, LookupOptions } from 'node:dns'
import type { LookupFunction } from 'node:net'
import { KeyvaletError } from '../errors.ts'
import type { AddressPolicy } from './address-policy.ts'
import { EgressError, MAX_REPORTED, type EgressDetail } from './egress-error.ts'
import { classifyHost, isIpLiteralRefusal } from './ip-literal.ts'
import type { NameResolver, ResolvedAddress } from './resolver.ts'

export interface RefusedAddress extends ResolvedAddress {
  readonly range: string
  readonly via?: string
}

export interface LookupOutcome {
  readonly host: string
  /** The addresses handed to net, in the order given. */
  readonly allowed: readonly ResolvedAddress[]
  readonly refused: readonly RefusedAddress[]
}

export interface GuardedLookupOptions {
  readonly resolver: NameResolver
  readonly policy: AddressPolicy
  /** Called once per successful lookup, before net dials (for the audit record / metrics). */
  readonly onLookup?: (outcome: LookupOutcome) => void
}

type Callback = Parameters<LookupFunction>[2]

/** A `lookup` for net.connect / tls.connect / undici `connect`. Errors are EgressError instances. */
export function createGuardedLookup(opts: GuardedLookupOptions): LookupFunction {
  const { resolver, policy, onLookup } = opts
  return (hostname: string, options: LookupOptions | number, callback: Callback): void => {
    // dns.lookup's legacy (hostname, family, cb) form: accept it too.
    const o: LookupOptions = typeof options === 'number' ? { family: options } : (options ?? {})
    const wantFamily = normaliseFamily(o.family)
    decide(hostname, wantFamily, o.order === 'ipv6first', resolver, policy).then((result) => {
      // Deliver outside the promise chain: the callback runs exactly once, and anything it throws
      // surfaces as it would from dns.lookup, not as a swallowed rejection.
      process.nextTick(() => {
        if (result instanceof EgressError) return callback(result, '', 0)
        try {
          onLookup?.(result)
        } catch (err) {
          // Fail closed: an outcome that could not be recorded is not dialed.
          return callback(new EgressError('KEYVALET_DNS_FAILED', { why: 'dns_failed', host: result.host, reason: 'on_lookup_failed' }, { cause: err }), '', 0)
        }
        if (o.all === true) {
          const list: LookupAddress[] = result.allowed.map((a) => ({ address: a.address, family: a.family }))
          callback(null, list)
        } else {
          const first = result.allowed[0] as ResolvedAddress
          callback(null, first.address, first.family)
        }
      })
    })
  }
}

/** Never rejects: an outcome with at least one allowed address of the wanted family, or the error. */
async function decide(hostname: string, wantFamily: 0 | 4 | 6, ipv6First: boolean, resolver: NameResolver, policy: AddressPolicy): Promise<LookupOutcome | EgressError> {
  try {
    const { host, allowed, refused } = await guardedResolve(hostname, resolver, policy)
    let usable = wantFamily === 0 ? allowed : allowed.filter((a) => a.family === wantFamily)
    if (usable.length === 0) {
      if (allowed.length > 0) return new EgressError('KEYVALET_DNS_FAILED', { why: 'dns_failed', host, reason: 'no_address_for_family' })
      return refusedError(host, refused)
    }
    if (ipv6First) usable = [...usable.filter((a) => a.family === 6), ...usable.filter((a) => a.family === 4)]
    return { host, allowed: usable, refused }
  } catch (err) {
    if (err instanceof EgressError) return err
    return new EgressError('KEYVALET_DNS_FAILED', { why: 'dns_failed', host: String(hostname).slice(0, 256), reason: 'error' }, { cause: err })
  }
}

/** Classifies, resolves and checks `hostname`: every resolved address lands in allowed or refused. */
async function guardedResolve(hostname: string, resolver: NameResolver, policy: AddressPolicy): Promise<LookupOutcome> {
  const cls = classifyHost(hostname)
  if (cls.kind === 'refused') {
    throw new EgressError('KEYVALET_HOST_REFUSED', { why: isIpLiteralRefusal(cls.why) ? 'ip_literal_refused' : 'host_invalid', host: hostname.slice(0, 256), reason: cls.why })
  }
  const host = cls.kind === 'name' ? cls.name : cls.address
  const answers: readonly ResolvedAddress[] = cls.kind === 'ip' ? [{ address: cls.address, family: cls.family }] : await resolver.resolve(cls.name)
  const allowed: ResolvedAddress[] = []
  const refused: RefusedAddress[] = []
  for (const a of answers) {
    const verdict = policy.check(a.address, a.family)
    if (verdict.ok) allowed.push({ address: a.address, family: a.family })
    else refused.push({ address: a.address, family: a.family, range: verdict.range, ...(verdict.via !== undefined ? { via: verdict.via } : {}) })
  }
  return { host, allowed, refused }
}

function refusedError(host: string, refused: readonly RefusedAddress[]): EgressError {
  const detail: EgressDetail = {
    why: 'address_refused',
    host,
    range: refused[0]?.range ?? 'none',
    refused: refused.slice(0, MAX_REPORTED).map((r) => ({ address: r.address, family: r.family, range: r.range, ...(r.via !== undefined ? { via: r.via } : {}) })),
  }
  return new EgressError('KEYVALET_ADDRESS_REFUSED', detail)
}

function normaliseFamily(family: LookupOptions['family']): 0 | 4 | 6 {
  if (family === 4 || family === 'IPv4') return 4
  if (family === 6 || family === 'IPv6') return 6
  return 0
}

/**
 * For a host the caller is about to dial: refuses odd IP encodings and malformed names, and IP
 * literals in refused ranges (net.connect would dial a literal without calling lookup). Returns
 * the classification — dial `address` (canonical form) for an IP, or pass `name` to net.connect
 * with the guarded lookup. Throws KeyvaletError upstream_host_invalid (detail.why
 * 'ip_literal_refused' | 'host_invalid') or upstream_address_refused.
 */
export function checkLiteral(host: string, policy: AddressPolicy): { kind: 'name'; name: string } | { kind: 'ip'; address: string; family: 4 | 6 } {
  const cls = classifyHost(host)
  if (cls.kind === 'refused') {
    const why = isIpLiteralRefusal(cls.why) ? 'ip_literal_refused' : 'host_invalid'
    throw new KeyvaletError('upstream_host_invalid', { detail: { why, host: String(host).slice(0, 256), reason: cls.why } })
  }
  if (cls.kind === 'ip') {
    const verdict = policy.check(cls.address, cls.family)
    if (!verdict.ok) {
      const ref = { address: cls.address, family: cls.family, range: verdict.range, ...(verdict.via !== undefined ? { via: verdict.via } : {}) }
      throw new KeyvaletError('upstream_address_refused', { detail: { why: 'address_refused', host: cls.address, range: verdict.range, refused: [ref] } })
    }
  }
  return cls
}
