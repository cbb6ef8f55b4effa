/**
 * The one error type keyvalet raises on purpose, and the catalogue of its codes.
 *
 * Contract: `message` is safe to show the sandbox (never a secret, a path on disk, a stack trace or
 * the vault's contents). Anything that helps an operator goes in `detail`, which reaches the audit
 * record and the operator log only. Callers branch on `code`, never on message text.
 */

/** code → [HTTP status, default message]. Codes are stable snake_case; add, never rename. */
export const ERROR_CATALOGUE = {
  // authenticate
  task_key_missing: [401, 'A task key is required: send it where the real credential would go.'],
  task_key_malformed: [401, 'The task key is malformed.'],
  task_key_invalid: [401, 'The task key is not valid.'],
  task_key_expired: [401, 'The task key has expired.'],
  task_key_revoked: [401, 'The task key has been revoked.'],
  task_key_misplaced: [400, 'A task key was found outside the credential slot; the request was refused.'],
  placeholder_misplaced: [400, 'A credential placeholder was found outside its credential slot; the request was refused.'],
  // route
  request_malformed: [400, 'The request is not valid HTTP/1.1 and was refused.'],
  connector_unknown: [404, 'No connector is configured under this name.'],
  destination_refused: [403, 'keyvalet does not allow requests to this destination.'],
  host_mismatch: [400, 'The Host header, the TLS server name and the CONNECT destination do not agree.'],
  proxy_request_invalid: [400, 'The forward proxy takes absolute-form http:// requests and CONNECT host:port.'],
  path_ambiguous: [400, 'The request path is ambiguous and was refused.'],
  header_invalid: [400, 'A request header was refused.'],
  method_refused: [405, 'This method is not allowed through keyvalet.'],
  upgrade_refused: [400, 'Protocol upgrades are not allowed on this route.'],
  h2_protocol_violation: [400, "The HTTP/2 connection broke the protocol or went over keyvalet's limits; it was closed."],
  h2_stream_refused: [400, "The HTTP/2 stream broke the protocol (a malformed header block) or went over keyvalet's limits; it was reset before any of it was read."],
  // decide
  policy_denied: [403, 'The request is outside the task grant.'],
  body_too_large: [413, 'The request body is larger than keyvalet will inspect.'],
  body_invalid: [400, 'The request body does not have the shape this rule requires.'],
  body_unexpected: [400, 'This request carries a body, which its method does not take under the matching rule; the request was refused.'],
  mcp_request_invalid: [400, 'The request is not a valid MCP (JSON-RPC 2.0) message.'],
  // budget
  rate_limited: [429, 'This task is over a rate limit; retry after the time Retry-After gives.'],
  budget_exhausted: [429, 'This task has used up a budget it runs under.'],
  // approve (src/approvals/)
  approval_denied: [403, 'A person refused this request; it was not sent.'],
  approval_timeout: [403, 'No one approved this request in time; it was not sent.'],
  approval_body_too_large: [413, 'The request body is larger than keyvalet holds for an approval.'],
  approval_mismatch: [403, 'The request about to be sent is not the one that was approved; it was not sent.'],
  approval_limit_reached: [429, 'This task already has as many requests waiting for approval as it may; this one was not sent.'],
  approval_unavailable: [503, 'keyvalet could not ask for approval of this request (the store is unavailable); it was not sent.'],
  // attribute
  attribution_conflict: [400, 'The request names a different user than the one this task acts for; it was refused.'],
  attribution_body_invalid: [400, 'This connector adds the invoking user to the request body, which must then be a JSON object (application/json, not content-coded).'],
  // credential
  credential_unavailable: [502, 'The credential for this connector is not available.'],
  credential_refresh_failed: [502, 'The credential for this connector could not be refreshed; the request was not sent.'],
  request_unsupported: [400, 'keyvalet cannot forward this request in the form it was sent.'],
  // forward
  upstream_unreachable: [502, 'The upstream could not be reached.'],
  upstream_address_refused: [403, 'The upstream address is not allowed.'],
  upstream_host_invalid: [400, 'The upstream host is not a valid name or IP address.'],
  upstream_dns_failed: [502, 'The upstream host name could not be resolved.'],
  upstream_tls_failed: [502, 'The upstream TLS certificate could not be verified.'],
  upstream_timeout: [504, 'The upstream did not answer in time.'],
  upstream_response_invalid: [502, 'The upstream response could not be relayed safely.'],
  upstream_reset: [502, 'The upstream closed the connection before its answer was complete.'],
  upstream_headers_too_large: [502, 'The upstream response headers are larger than keyvalet accepts.'],
  request_timeout: [408, 'The request was not received in time.'],
  idle_timeout: [504, 'Nothing moved on the connection for longer than keyvalet allows; it was closed.'],
  // 499 (as proxies log it): nobody is left to answer; the record still says what happened.
  client_closed: [499, 'The client closed the connection before its answer was complete.'],
  // audit
  audit_unavailable: [503, 'keyvalet cannot write its audit log right now, so it takes no request; try again shortly.'],
  // store (PostgreSQL unreachable and nothing kept for this request, or kept longer than store.unavailable_grace)
  store_unavailable: [503, 'keyvalet cannot reach its store right now, so it cannot check this request; try again shortly.'],
  // shutdown
  shutting_down: [503, 'keyvalet is shutting down; the request was cut short.'],
  // configuration (admin API: reload)
  config_invalid: [422, 'The configuration file has errors; the configuration in force stays.'],
  config_reload_refused: [409, 'The new configuration changes what a reload cannot change; the configuration in force stays.'],
  // admin API (its own listener; the caller is an operator, never the sandbox)
  admin_token_missing: [401, 'An admin token is required: send it as Authorization: Bearer kva_...'],
  admin_token_invalid: [401, 'The admin token is not valid.'],
  admin_token_expired: [401, 'The admin token has expired.'],
  admin_token_revoked: [401, 'The admin token has been revoked.'],
  admin_token_throttled: [429, 'Too many bad admin tokens from this address; try again later.'],
  admin_role_forbidden: [403, "The admin token's role does not allow this call."],
  admin_route_unknown: [404, 'No admin API route has this path.'],
  admin_method_refused: [405, 'This admin API route does not take this method.'],
  admin_request_invalid: [400, 'The admin API request is not valid.'],
  admin_media_type: [415, 'The admin API takes a JSON body (Content-Type: application/json).'],
  admin_body_too_large: [413, 'The admin API request body is too large.'],
  admin_not_found: [404, 'The admin API found nothing under this name.'],
  admin_approval_closed: [409, 'This approval is no longer pending: it was decided, it expired, or its request was withdrawn.'],
  // everything else
  internal_error: [500, 'keyvalet hit an internal error; the request was not forwarded.'],
} as const satisfies Record<string, readonly [number, string]>

export type ErrorCode = keyof typeof ERROR_CATALOGUE

export interface ErrorOptions {
  /** Overrides the catalogue message; must still be safe to show the sandbox. */
  message?: string
  /** For the audit record and operator log only: never rendered to the sandbox. */
  detail?: Record<string, unknown>
  cause?: unknown
  /**
   * Secret values the failed step used (a refresh token, a client secret): never shown, logged
   * or recorded; the audit masks them wherever they turn up in the record.
   */
  secrets?: readonly string[]
  /**
   * The answer in the protocol the sandbox speaks, in place of keyvalet's error document (an MCP
   * refusal as a JSON-RPC error, src/mcp/reply.ts): status, type and body, all safe to show it.
   */
  reply?: ErrorReply
  /** When the refusal ends, for a Retry-After header (rate_limited). */
  retryAfterSeconds?: number
}

export interface ErrorReply {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

export class KeyvaletError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly detail: Record<string, unknown> | undefined
  readonly reply: ErrorReply | undefined
  readonly retryAfterSeconds: number | undefined
  // A private field: not enumerable, so no inspection, JSON or structured clone of the error shows it.
  readonly #secrets: readonly string[]

  constructor(code: ErrorCode, options: ErrorOptions = {}) {
    const [status, message] = ERROR_CATALOGUE[code]
    super(options.message ?? message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'KeyvaletError'
    this.code = code
    this.status = status
    this.detail = options.detail
    this.reply = options.reply
    this.retryAfterSeconds = options.retryAfterSeconds
    this.#secrets = options.secrets ?? []
  }

  /** See ErrorOptions.secrets. */
  get secrets(): readonly string[] {
    return this.#secrets
  }
}

/** Anything that is not a KeyvaletError becomes internal_error: its text never reaches the sandbox. */
export function toKeyvaletError(err: unknown): KeyvaletError {
  if (err instanceof KeyvaletError) return err
  return new KeyvaletError('internal_error', { cause: err })
}

/**
 * An error in configuration, the CLI or the store, for the operator (not the sandbox).
 * `hint` says how to fix it; the CLI prints `message` and `hint` and exits non-zero.
 */
export class OperatorError extends Error {
  readonly hint: string | undefined
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'OperatorError'
    this.hint = hint
  }
}
