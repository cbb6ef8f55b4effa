import type { CredentialBinding, HeaderGuard, InjectKind } from '../model/policy.ts'

/** The outbound request as the inject stage sees it: already stripped of the sandbox's credential slots. */
export interface OutboundRequest {
  readonly method: string
  /** Upstream origin (scheme://host[:port]) and the exact path that will be sent, without the query. */
  readonly origin: string
  readonly path: string
  /** The body when keyvalet holds it whole (a rule read it); undefined when it streams or there is none. */
  readonly body: Buffer | undefined
  /** True when a body follows that keyvalet does not hold: it streams from the sandbox as it comes. */
  readonly bodyStreams?: boolean
  /** Lower-case header names. */
  headers: Record<string, string | string[]>
  /** Raw query string without '?'; kinds that touch the query rewrite it. */
  query: string
  /** True when the policy decided the S3 copy source (x-amz-copy-source) readable: aws_sigv4 signs a copy only then. */
  readonly copySourceDecided?: boolean
  /** Set by a kind whose signature reaches into the body (aws_sigv4's signed chunks): the body goes through it. */
  bodyRewriter?: BodyRewriter
}

/** Rewrites a body as it streams, keeping its length. Throws a KeyvaletError on a body it cannot take. */
export interface BodyRewriter {
  /** The rewritten bytes complete so far. */
  push(chunk: Buffer): Buffer[]
  /** Called at the end of the body: throws when it ended early. */
  end(): void
}

/**
 * A way of putting a secret on an outbound request. One file per kind, listed in registry.ts.
 *
 * Contract: `inject` is synchronous and cheap, touches nothing but `req`, and never logs.
 * `slot` names where the credential goes, so the pipeline can remove whatever the sandbox put
 * there first. `headerGuard`, when set, makes the policy refuse the upstream's consequential
 * headers unless a rule names them (policy/decide.ts, header_not_named). `echoValues` lists the
 * values that stand for the secret on the wire (the secret, and what the kind builds from it:
 * `user:secret`, a rendered header): every encoding of each (percent, JSON, base64...;
 * src/redact/patterns.ts) is masked in responses and audit records.
 */
export interface CredentialKind {
  readonly kind: InjectKind
  slot(binding: CredentialBinding): { readonly header?: string; readonly param?: string }
  inject(req: OutboundRequest, binding: CredentialBinding, secret: string): void
  echoValues(binding: CredentialBinding, secret: string): string[]
  /** Headers the upstream acts on that rules of a connector of this kind must name before a request may carry them. */
  readonly headerGuard?: HeaderGuard
}
