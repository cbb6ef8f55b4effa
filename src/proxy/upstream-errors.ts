import { toEgressKeyvaletError } from '../egress/egress-error.ts'
import { KeyvaletError, type ErrorCode } from '../errors.ts'

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
])
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])
/** The connection was made, then closed or reset before the answer was complete. */
const RESET_CODES = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'ECONNABORTED'])
const HEADER_OVERFLOW_CODES = new Set(['UND_ERR_HEADERS_OVERFLOW', 'HPE_HEADER_OVERFLOW'])
/** HTTP framed wrongly (a bad status line or chunk is undici's HTTPParserError, below). */
const INVALID_CODES = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE'])

/**
 * What went wrong talking to the upstream, as a stable code: used for a failure before the
 * response head (forward) and while its body streams (relay) alike, so the same fault gets the
 * same code wherever it happens. A KeyvaletError anywhere in the cause chain (an abort's reason,
 * an egress refusal) is the answer itself. The upstream's own error text goes to the audit detail
 * only.
 */
export function upstreamError(err: unknown): KeyvaletError {
  for (let e: unknown = err, depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    if (e instanceof KeyvaletError) return e
    e = typeof e === 'object' && 'cause' in e ? (e as { cause?: unknown }).cause : undefined
  }
  const egress = toEgressKeyvaletError(err)
  if (egress !== undefined) return egress
  const { code, name } = errorFacts(err)
  const detail = { upstream_error: code ?? name }
  const as = (c: ErrorCode, extra: Record<string, unknown> = {}): KeyvaletError => new KeyvaletError(c, { detail: { ...detail, ...extra }, cause: err })
  if (code !== undefined && TLS_CODES.has(code)) return as('upstream_tls_failed')
  if (code !== undefined && TIMEOUT_CODES.has(code)) return as('upstream_timeout')
  if (code !== undefined && HEADER_OVERFLOW_CODES.has(code)) return as('upstream_headers_too_large')
  if (code !== undefined && RESET_CODES.has(code)) return as('upstream_reset')
  // undici's HTTPParserError carries llhttp's reason in its message (no response bytes).
  if (name === 'HTTPParserError') return as('upstream_response_invalid', { why: String((err as Error).message).slice(0, 160) })
  if (code !== undefined && INVALID_CODES.has(code)) return as('upstream_response_invalid')
  return as('upstream_unreachable')
}

function errorFacts(err: unknown): { code: string | undefined; name: string } {
  if (typeof err !== 'object' || err === null) return { code: undefined, name: 'unknown' }
  const code = 'code' in err && err.code !== undefined && err.code !== null ? String(err.code) : undefined
  return { code, name: err instanceof Error ? err.name : 'unknown' }
}
