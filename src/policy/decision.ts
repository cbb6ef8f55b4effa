import type { Connector, Grant, Rule } from '../model/policy.ts'

/** Why a request was refused. Closed set; appears verbatim in audit records. */
export type DenyReason =
  | 'no_rule_for_path' // no rule of the connector matches the path
  | 'method_not_allowed' // a rule matches the path, none matches the method
  | 'not_in_grant' // matching rules exist, the task's grant names none of them (or not this connector)
  | 'severity_exceeds_grant' // the matching rule needs a higher severity than the grant allows
  | 'query_not_allowed' // a query parameter is missing, unexpected or does not match
  | 'header_not_allowed' // a constrained header is missing or does not match
  | 'header_not_named' // the request carries a guarded header (connector.headerGuard) the rule does not name
  | 'body_not_allowed' // the body does not satisfy the rule's JSON Schema (or is not JSON)
  | 'upgrade_not_allowed' // the request asks for a protocol upgrade the rule does not allow
  | 'body_unexpected' // a GET, HEAD, DELETE or OPTIONS carries a body and the rule takes none

export type Decision =
  | { readonly effect: 'allow'; readonly reason: 'rule_matched'; readonly rule: Rule; readonly detail: string }
  | { readonly effect: 'deny'; readonly reason: DenyReason; readonly rule: Rule | undefined; readonly detail: string; readonly header?: string }
  /** The outcome depends on the body: read it (bounded), then decide again with `body` set. */
  | { readonly effect: 'need_body' }

/** The parsed request body, when a rule asked for it. */
export type BodyFacts = { readonly json: unknown } | { readonly invalid: string }

/** Everything decide() looks at. One object, so the signature stays stable as facts are added. */
export interface DecideArgs {
  readonly connector: Connector
  readonly grants: readonly Grant[]
  /** Upper-case. */
  readonly method: string
  /** Normalised, percent-decoded path segments below the connector (see policy/path.ts). */
  readonly segments: readonly string[]
  readonly query: URLSearchParams
  /** Lower-case names, as node:http gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body?: BodyFacts
  /** Whether the request carries a body (Content-Length > 0 or Transfer-Encoding): proxy/headers.ts carriesBody. */
  readonly carriesBody?: boolean
  /** The protocol of an upgrade request (lower-case, e.g. 'websocket'); undefined for plain requests. */
  readonly upgrade?: string
}
