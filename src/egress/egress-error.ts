/**
 * The error the egress guard hands to net/undici (through a `lookup` callback), and its mapping to
 * a KeyvaletError for the pipeline. net.connect destroys the socket with exactly this object, so
 * the forward stage can recognise it with `toEgressKeyvaletError` even through undici.
 *
 * `detail` is for the audit record and operator log only; it holds host names, addresses, ranges
 * and resolver error codes — never a credential, a task key or a request header.
 */
import { KeyvaletError } from '../errors.ts'

export type EgressErrorCode = 'KEYVALET_ADDRESS_REFUSED' | 'KEYVALET_DNS_FAILED' | 'KEYVALET_HOST_REFUSED'

export type EgressWhy = 'address_refused' | 'dns_failed' | 'ip_literal_refused' | 'host_invalid'

export interface EgressDetail {
  readonly why: EgressWhy
  readonly host: string
  /** Refused addresses with the range that refused each (at most MAX_REPORTED). */
  readonly refused?: readonly { address: string; family: 4 | 6; range: string; via?: string }[]
  /** The refused range of the first refused address, for a one-field audit summary. */
  readonly range?: string
  /** A finer reason: a classifyHost token, or 'nxdomain' | 'no_data' | 'timeout' | 'servfail' | ... */
  readonly reason?: string
  /** The resolver's error code (e.g. ENOTFOUND, ETIMEOUT), when there was one. */
  readonly dnsCode?: string
}

/** Bounds the size of an audit detail when a DNS answer carries many records. */
export const MAX_REPORTED = 8

export class EgressError extends Error {
  readonly code: EgressErrorCode
  readonly detail: EgressDetail

  constructor(code: EgressErrorCode, detail: EgressDetail, options?: { cause?: unknown }) {
    // The message goes to logs; it carries the same non-secret facts as detail.
    super(`${code}: ${detail.why}${detail.reason !== undefined ? ` (${detail.reason})` : ''} for ${detail.host}${detail.range !== undefined ? ` in ${detail.range}` : ''}`, options)
    this.name = 'EgressError'
    this.code = code
    this.detail = detail
  }

  /**
   * upstream_address_refused / upstream_host_invalid / upstream_dns_failed, with the facts in
   * `detail`. The sandbox sees only the catalogue message, so it learns nothing about internal
   * addresses (no DNS reconnaissance through keyvalet).
   */
  toKeyvaletError(): KeyvaletError {
    const code = this.code === 'KEYVALET_ADDRESS_REFUSED' ? 'upstream_address_refused' : this.code === 'KEYVALET_HOST_REFUSED' ? 'upstream_host_invalid' : 'upstream_dns_failed'
    return new KeyvaletError(code, { detail: { ...this.detail }, cause: this })
  }
}

/** The KeyvaletError for an egress refusal found anywhere in `err`'s cause chain (bounded), else undefined. */
export function toEgressKeyvaletError(err: unknown): KeyvaletError | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 5 && e !== null && e !== undefined; depth++) {
    if (e instanceof EgressError) return e.toKeyvaletError()
    e = typeof e === 'object' && 'cause' in e ? (e as { cause?: unknown }).cause : undefined
  }
  return undefined
}
