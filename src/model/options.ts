/** The options a connector's features compiled to (assertion, attribution, the corporate proxy). */

export interface AssertionOptions {
  /** Lower-case header that carries the JWT; the sandbox's own value of it is never forwarded. */
  readonly header: string
  readonly ttlSeconds: number
  readonly issuer: string
  readonly audience: string
}

export interface AttributionOptions {
  /** Dot paths into a JSON request body, e.g. ['user', 'safety_identifier'] or ['metadata', 'user_id'] as one path each. */
  readonly bodyFields: readonly (readonly string[])[]
  /** Lower-case header set to the user value, when configured. */
  readonly header: string | undefined
  /** user: the session's user id as is; hashed: a keyed HMAC of it, stable per connector. */
  readonly value: 'user' | 'hashed'
}

/** A corporate HTTP proxy upstream connections are chained through (CONNECT). */
export interface UpstreamProxy {
  readonly url: URL
  /** Vault secret with user:password for Proxy-Authorization, if the proxy wants credentials. */
  readonly secret: string | undefined
  readonly allowAddresses: readonly string[]
}
