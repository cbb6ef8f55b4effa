import type { AuditFields } from '../audit/record.ts'
import type { Logger } from '../log.ts'
import type { RequestObserver } from './observer.ts'

/** Failures of the upstream exchange (the network, DNS, TLS, the upstream's answer): warn. */
const WARN_CODES: ReadonlySet<string> = new Set([
  'upstream_unreachable', 'upstream_address_refused', 'upstream_dns_failed', 'upstream_tls_failed', 'upstream_timeout',
  'upstream_response_invalid', 'upstream_reset', 'upstream_headers_too_large', 'idle_timeout',
])
/** Failures of keyvalet's own parts (the vault, credential sources, the audit, a bug): error. */
const ERROR_CODES: ReadonlySet<string> = new Set(['credential_unavailable', 'credential_refresh_failed', 'audit_unavailable', 'internal_error'])

/**
 * The operator's line per request (a "canonical log line"): one `request` line when each request
 * settles, from its closing audit record — at info; at warn for an upstream, DNS or TLS failure and
 * at error for a vault, credential or audit failure, those two with the record's `detail` (operator
 * facts the audit already holds, masked like it: never a secret, a task key, a query value or a
 * body). Identifiers only: the request id, session and trace id join it to the audit record.
 */
export class RequestLog implements RequestObserver {
  readonly #log: Logger
  readonly #info: boolean

  constructor(log: Logger) {
    this.#log = log
    this.#info = log.infoEnabled !== false
  }

  settled(fields: AuditFields, upstreamMs: number | undefined): void {
    const error = fields.error
    const level = error === null ? 'info' : ERROR_CODES.has(error) ? 'error' : WARN_CODES.has(error) ? 'warn' : 'info'
    if (level === 'info' && !this.#info) return
    const line = {
      request_id: fields.request_id,
      mode: fields.mode,
      connector: fields.connector,
      method: fields.method,
      decision: fields.decision,
      reason: fields.reason,
      error,
      status: fields.status,
      upstream_status: fields.upstream_status,
      latency_ms: Math.round(fields.latency_ms * 1000) / 1000,
      upstream_ms: upstreamMs === undefined ? null : Math.round(upstreamMs * 1000) / 1000,
      bytes_in: fields.bytes_in,
      bytes_out: fields.bytes_out,
      session: fields.session,
      trace_id: fields.trace_id ?? null,
      ...(level !== 'info' && fields.detail !== undefined ? { detail: fields.detail } : {}),
    }
    this.#log[level]('request', line)
  }

  unadmitted(): void {
    // Counted by the metrics; the audit's own outage lines (audit-writer.ts) tell the operator why.
  }
}
