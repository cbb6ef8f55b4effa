/**
 * One closing audit record per request, whatever its outcome — preceded, for a stream or a long
 * request, by its open record (see `phase`). Field names are fixed: tools and `audit
 * verify` depend on them. A record never holds a secret value, a task key or a query value.
 */
export interface AuditFields {
  readonly request_id: string
  /**
   * 'gateway' | 'forward': which listener received the request; 'admin': a call of the admin API
   * (with `actor`, `action` and `target`); 'keyvalet' for a record about keyvalet itself (an audit outage).
   */
  readonly mode: string
  readonly session: string | null
  readonly agent: string | null
  readonly user: string | null
  readonly workspace: string | null
  readonly task: string | null
  readonly connector: string | null
  readonly method: string
  /** The path as decided on (and sent), below the connector; null when it was refused unparsed. */
  readonly path: string | null
  /** Names of query parameters only, never their values. */
  readonly query_keys: readonly string[]
  /** would_deny: forwarded under report mode although the policy refuses it (`reason` and `rule` say why). */
  readonly decision: 'allow' | 'deny' | 'error' | 'would_deny'
  /** A policy reason (policy/decision.ts) or an error code (errors.ts). */
  readonly reason: string
  readonly rule: string | null
  /** What the attached credential was (a vault secret name, or a source's label such as oauth_user:github:alice), never its value. */
  readonly credential: string | null
  /** Status keyvalet answered the sandbox with. */
  readonly status: number
  readonly upstream_status: number | null
  /** Error code when keyvalet itself answered (denied or failed), else null. */
  readonly error: string | null
  readonly bytes_in: number
  readonly bytes_out: number
  /** Times the injected credential was found in the response and redacted. */
  readonly redactions: number
  readonly latency_ms: number
  /**
   * The W3C trace id (32 hex digits) the request belongs to: continued from its `traceparent`, or
   * started by keyvalet, and sent upstream in the `traceparent` it forwards. Absent on records
   * written outside the request stages (a CONNECT, a parser refusal).
   */
  readonly trace_id?: string
  /** A request to an MCP endpoint (src/mcp/): one entry per JSON-RPC message it carried; omitted otherwise. */
  readonly mcp?: readonly McpAuditEntry[]
  /**
   * The version of the configuration the record was decided under (config/version.ts): a request's
   * is the one it started under; other records carry the one in force when they were written.
   * Absent from records written before keyvalet had versions, and from the audit writer's own
   * outage records (mode keyvalet), which it writes in its thread.
   */
  readonly config_version?: string
  /**
   * A request that needed a person's yes (src/approvals/): the approval's id, what became of it
   * (approved, denied, expired, cancelled), who decided (the admin token, by id and name), their
   * reason, how long the request waited, the digest of the request as approved, and whether an
   * earlier approval of identical requests let it through (`remembered`). Omitted otherwise.
   */
  readonly approval?: ApprovalAuditEntry
  /** Operator-only extra facts (never secret); omitted when empty. */
  readonly detail?: Readonly<Record<string, unknown>>
  /**
   * Absent for a request recorded whole, once, when it ends. 'open': the record of a stream or a
   * long request, written while it is still in flight (a crash leaves it open); 'close': its one
   * closing record, naming the open record in `opened`, with the outcome.
   */
  readonly phase?: 'open' | 'close'
  /** On a 'close' record: the seq of the request's 'open' record. */
  readonly opened?: number
  /**
   * Admin API records only (mode 'admin'). `actor`: the admin token that called, by id and name
   * (never the token); null when no valid token was given. `action`: the route's action (e.g.
   * session.create), null when no route matched. `target`: what the call named or acted on (a
   * session id, a secret name, a filter, the ids it revoked), never a secret value or a task key.
   * On these records `path` is the admin API path and `connector` is null.
   */
  readonly actor?: { readonly id: string; readonly name: string } | null
  readonly action?: string | null
  readonly target?: Readonly<Record<string, unknown>>
}

export interface ApprovalAuditEntry {
  readonly id: string
  readonly decision: string
  readonly approver: { readonly id: string; readonly name: string } | null
  readonly reason: string | null
  readonly wait_ms: number
  readonly digest: string
  readonly remembered: boolean
}

/** One JSON-RPC message of a request to an MCP endpoint, as decided. Never an argument value: their digest. */
export interface McpAuditEntry {
  readonly method: string
  /** tools/call: the tool; prompts/get: the prompt; resources/*: the URI (each bounded). */
  readonly tool?: string
  readonly prompt?: string
  readonly uri?: string
  /** sha256 of the arguments' canonical JSON (`sha256:` and hex), for tools/call and prompts/get. */
  readonly arguments_digest?: string
  readonly decision: 'allow' | 'deny'
  readonly reason: string
  readonly rule: string | null
}

/** As written: the fields plus time and chain position. `hash` covers everything else. */
export interface AuditRecord extends AuditFields {
  readonly seq: number
  readonly time: string
  readonly prev: string
  readonly hash: string
}
