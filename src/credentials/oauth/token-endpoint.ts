import { KeyvaletError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import { jsonObject, type TokenHttp } from '../token-http.ts'

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1). */
export interface ClientAuth {
  readonly clientId: string
  /** undefined for a public client: only client_id is sent. */
  readonly clientSecret: string | undefined
  /** basic: HTTP Basic (the RFC's default); post: client_id and client_secret in the form body. */
  readonly method: 'basic' | 'post'
}

/** A successful token response, validated. */
export interface GrantedToken {
  readonly accessToken: string
  /** undefined when the server sent none (the caller keeps the one it had, RFC 6749 §6). */
  readonly refreshToken: string | undefined
  /** Seconds, as the server said; undefined when it did not say (valid until refused). */
  readonly expiresIn: number | undefined
  /** The granted scope when the server said (space-separated), else undefined. */
  readonly scope: string | undefined
}

/** refresh_token_dead: not asked again, the server already answered invalid_grant for this refresh token. */
export type TokenFailure = 'token_endpoint_rejected' | 'token_endpoint_unreachable' | 'token_response_invalid' | 'refresh_token_dead'

/**
 * The token endpoint failed. `detail` is safe for the audit record: the OAuth error code (one of
 * the registered codes, else `other`), the HTTP status, a network error code — never the response
 * body, never a token. `secrets` are the values the request carried (client secret, refresh
 * token, code, verifier), for the audit to mask should any turn up all the same.
 */
export class TokenEndpointError extends Error {
  readonly why: TokenFailure
  readonly detail: Readonly<Record<string, string | number>>
  readonly #secrets: readonly string[]
  constructor(why: TokenFailure, detail: Record<string, string | number>, options?: { cause?: unknown; secrets?: readonly string[] }) {
    super(`${why}: ${Object.entries(detail).map(([k, v]) => `${k}=${v}`).join(' ')}`, options)
    this.name = 'TokenEndpointError'
    this.why = why
    this.detail = detail
    this.#secrets = options?.secrets ?? []
  }

  get secrets(): readonly string[] {
    return this.#secrets
  }

  /** The OAuth error code the server answered with (invalid_grant, invalid_client...), if any. */
  get oauthError(): string | undefined {
    const code = this.detail.oauth_error
    return typeof code === 'string' ? code : undefined
  }
}

/**
 * The error codes a token endpoint may answer that are recorded as they are: RFC 6749 §5.2's, and
 * those the IANA OAuth Extensions Error Registry lists for the token endpoint (device grant
 * RFC 8628, resource indicators RFC 8707, ACE RFC 9200, rich authorization requests RFC 9396,
 * DPoP RFC 9449), plus server_error and temporarily_unavailable (registered for the
 * authorization endpoint, and what token endpoints answer when they fail). Anything else is
 * recorded as `other`: the code is the server's text, and a server can put anything there — a
 * refresh token it echoes, for one.
 */
const REGISTERED_ERRORS: ReadonlySet<string> = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope',
  'authorization_pending', 'slow_down', 'access_denied', 'expired_token', 'invalid_target', 'unsupported_pop_key',
  'incompatible_ace_profiles', 'invalid_authorization_details', 'invalid_dpop_proof', 'use_dpop_nonce',
  'server_error', 'temporarily_unavailable',
])
/** A value that will be put in a header: visible ASCII only, so it cannot split or fold a header. */
const HEADER_SAFE = /^[\x21-\x7e]{1,16384}$/

/**
 * POSTs one grant (`grant_type` and its parameters) to the token endpoint through TokenHttp and
 * returns the validated answer. Throws TokenEndpointError, and only that.
 *
 * Hand-written rather than oauth4webapi: the three grants keyvalet uses are each one form POST,
 * TokenHttp is Buffer-based (no WHATWG fetch to adapt), and oauth4webapi's processing of an
 * id_token would need an issuer we do not configure. Owning the ~60 lines keeps exact control of
 * what reaches an error: codes, never bodies.
 */
export async function requestToken(http: TokenHttp, connector: Connector, tokenUrl: URL, grant: Record<string, string>, client: ClientAuth): Promise<GrantedToken> {
  const form = new URLSearchParams(grant)
  const secrets = [client.clientSecret, grant.refresh_token, grant.code, grant.code_verifier].filter((s) => s !== undefined)
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
  if (client.method === 'basic' && client.clientSecret !== undefined) {
    // §2.3.1: both parts are form-urlencoded before they are joined and base64-encoded.
    headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString('base64')}`
  } else {
    form.set('client_id', client.clientId)
    if (client.clientSecret !== undefined) form.set('client_secret', client.clientSecret)
  }
  if (tokenUrl.protocol === 'http:' && !connector.allowInsecure) throw new TokenEndpointError('token_endpoint_unreachable', { error: 'cleartext_refused' }, { secrets })
  let res
  try {
    res = await http.request(tokenUrl, { method: 'POST', headers, body: form.toString() }, connector)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    throw new TokenEndpointError('token_endpoint_unreachable', { error: typeof code === 'string' ? code : (err as Error).name ?? 'error' }, { cause: err, secrets })
  }
  const body = jsonObject(res.body)
  if (res.status !== 200) {
    const error = body?.error
    throw new TokenEndpointError('token_endpoint_rejected', {
      status: res.status,
      ...(typeof error === 'string' ? { oauth_error: REGISTERED_ERRORS.has(error) ? error : 'other' } : {}),
    }, { secrets })
  }
  if (body === undefined) throw invalid('not a JSON object', secrets)
  const { access_token: accessToken, refresh_token: refreshToken, token_type: tokenType, scope } = body
  // What the answer carries is secret too, should it be malformed.
  const answered = [accessToken, refreshToken].filter((s) => typeof s === 'string')
  const refuse = (problem: string): TokenEndpointError => invalid(problem, [...secrets, ...answered])
  if (typeof accessToken !== 'string' || !HEADER_SAFE.test(accessToken)) throw refuse('access_token missing or not a visible-ASCII string')
  if (tokenType !== undefined && (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer')) throw refuse('token_type is not Bearer')
  if (refreshToken !== undefined && (typeof refreshToken !== 'string' || refreshToken === '')) throw refuse('refresh_token is not a string')
  if (scope !== undefined && typeof scope !== 'string') throw refuse('scope is not a string')
  const seconds = expiresIn(body.expires_in)
  if (seconds === null) throw refuse('expires_in is not a number of seconds')
  return { accessToken, refreshToken, expiresIn: seconds, scope }
}

/** Some servers send expires_in as a numeric string; null for anything else that is not a non-negative number. */
function expiresIn(value: unknown): number | undefined | null {
  if (value === undefined || value === null) return undefined
  const n = typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return null
  return n
}

function invalid(problem: string, secrets: readonly string[]): TokenEndpointError {
  return new TokenEndpointError('token_response_invalid', { problem }, { secrets })
}


function formEncode(text: string): string {
  return new URLSearchParams({ x: text }).toString().slice(2)
}

/**
 * A failed fetch or refresh as the pipeline reports it: credential_refresh_failed with the stable
 * `why` and the OAuth error code in `detail`. KeyvaletErrors (a vault failure) pass unchanged.
 */
export function refreshFailed(err: unknown, message?: string): KeyvaletError {
  if (err instanceof KeyvaletError) return err
  const detail = err instanceof TokenEndpointError ? { why: err.why, ...err.detail } : { why: 'token_endpoint_unreachable', error: (err as Error)?.name ?? 'error' }
  const secrets = err instanceof TokenEndpointError ? err.secrets : []
  return new KeyvaletError('credential_refresh_failed', { detail, cause: err, secrets, ...(message === undefined ? {} : { message }) })
}
