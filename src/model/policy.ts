/**
 * Domain shapes of policy, produced once by config/load.ts and never mutated afterwards.
 * Nothing past the loader sees raw configuration. The model imports nothing else from src/:
 * every feature imports it, never the other way round.
 */

import type { ApprovalOptions } from './approval.ts'
import type { UsageOptions } from './budget.ts'
import type { AssertionOptions, AttributionOptions, UpstreamProxy } from './options.ts'

export const SEVERITIES = ['read', 'write', 'admin'] as const
export type Severity = (typeof SEVERITIES)[number]

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s)
}

/** A compiled path pattern: matches already-normalised, decoded path segments. */
export interface PathMatcher {
  readonly source: string
  match(segments: readonly string[]): boolean
}

/** A constraint on one query parameter or header value. */
export interface ValueConstraint {
  readonly name: string
  /** Full-match regular expression the value must satisfy when present. */
  readonly pattern: RegExp | undefined
  readonly required: boolean
}

/** A compiled JSON Schema check of a request body. */
export interface BodyValidator {
  /** Returns undefined when the value conforms, else a short description safe for the audit log. */
  check(value: unknown): string | undefined
  /** The JSON Schema as written, for what reads the schema itself (replay: which fields it looks at). */
  readonly schema?: Readonly<Record<string, unknown>>
}

/**
 * Request headers the upstream acts on in ways the path and method do not show (an S3 ACL, a
 * redirect, an encryption key): a request carrying one fits a rule only when the rule names it
 * under `headers`. Set from the credential kind (credentials/aws-headers.ts for aws_sigv4).
 */
export interface HeaderGuard {
  /** What the lower-case header does, when a rule must name it; undefined when it may pass unnamed. */
  guarded(name: string): string | undefined
  /** The guarded headers it knows by name ('x-amz-grant-*' for a family), for `keyvalet check`. */
  readonly names: readonly string[]
  /** What else it guards, in words (e.g. unknown x-amz-* headers), for `keyvalet check`; empty when nothing. */
  readonly others: string
}

export interface Rule {
  /** Unique within its connector; appears in audit records and grants. */
  readonly id: string
  /** `mode: report`: a request this rule refuses is forwarded, and audited as would_deny. */
  readonly report?: boolean
  readonly connector: string
  /** Upper-case methods; a rule never matches a method it does not list. */
  readonly methods: ReadonlySet<string>
  /** The rule applies to a path any of these match (`path: [/a, /a/**]` in the config). */
  readonly paths: readonly PathMatcher[]
  readonly severity: Severity
  readonly query: readonly ValueConstraint[]
  /** When false, query parameters not named in `query` are refused. */
  readonly allowOtherQuery: boolean
  readonly headers: readonly ValueConstraint[]
  readonly body: BodyValidator | undefined
  /** Whether GET, HEAD, DELETE and OPTIONS may carry a body (true when the rule has a body schema). */
  readonly allowBody: boolean
  /** Whether a matching GET may upgrade to a WebSocket. */
  readonly websocket: boolean
  /** A request this rule allows waits for a person's yes (its own `approval`, or its connector's for its severity). */
  readonly approval?: ApprovalOptions | undefined
}

/** Where and how the real credential goes on the outbound request. */
export interface CredentialBinding {
  /** Vault secret name: the value itself for the static source, else what the source says it holds. */
  readonly secret: string | undefined
  /** Where the value comes from (credentials/sources/): `static` or a dynamic source with its compiled options. */
  readonly source: { readonly type: string; readonly options: unknown }
  /** How it is attached: the `inject` kind (credentials/registry.ts), e.g. bearer, header, aws_sigv4. */
  readonly kind: string
  /** What that kind's compile step made of its fields (credentials/kinds/<kind>.ts); only that kind reads it. */
  readonly options: unknown
}

/** auto: what the upstream chooses by ALPN (HTTP/1.1 offered first); h1 or h2: only that one. */
export type UpstreamHttp = 'auto' | 'h1' | 'h2'

export interface Connector {
  readonly name: string
  /** Parsed upstream base URL; its pathname (without trailing slash) prefixes every forwarded path. */
  readonly upstream: URL
  /** True only when the config explicitly allowed a cleartext http:// upstream. */
  readonly allowInsecure: boolean
  /** Extra CA certificates (PEM) trusted for this upstream, in addition to the system store. */
  readonly ca: string | undefined
  /** Which HTTP to speak upstream (config upstream_http; egress/dispatch.ts); absent: auto. */
  readonly upstreamHttp?: UpstreamHttp
  readonly credential: CredentialBinding | undefined
  /** The stand-in the sandbox holds for the credential; only ever accepted in the credential slot. */
  readonly placeholder: string | undefined
  /** CIDRs this connector may reach although not public (checked when dialing). */
  readonly allowAddresses: readonly string[]
  /** Its own corporate proxy; null = always direct; undefined = the instance's upstream_proxy. */
  readonly upstreamProxy: UpstreamProxy | null | undefined
  readonly rules: readonly Rule[]
  /** Headers a rule must name before a request may carry them (see HeaderGuard); none when undefined. */
  readonly headerGuard?: HeaderGuard | undefined
  /** A signed assertion of the invoking user, agent and task added to every allowed request (src/assertion/). */
  readonly assertion?: AssertionOptions | undefined
  /** The invoking user's id written into model-provider requests (src/attribution/). */
  readonly attribution?: AttributionOptions | undefined
  /** The upstream speaks MCP (Streamable HTTP): its endpoint is decided per JSON-RPC message (src/mcp/). */
  readonly mcp?: McpPolicy | undefined
  /** The upstream is a model provider whose responses report token usage (src/budgets/usage.ts). */
  readonly usage?: UsageOptions | undefined
  /** `mode: report`: a request the policy refuses is forwarded, and audited as would_deny. */
  readonly report?: boolean
}

/** What a task may use of a connector: at most `maxSeverity`, optionally only the named rules. */
export interface Grant {
  readonly connector: string
  readonly maxSeverity: Severity
  /** undefined = every rule of the connector up to maxSeverity. */
  readonly rules: readonly string[] | undefined
  /** Everything this grant allows waits for a person's yes (`+approval`); absent: it goes at once. */
  readonly approval?: GrantApproval
}

/** A grant's approval: how long a request waits; undefined: the default (approvals of rules have the same). */
export interface GrantApproval {
  readonly timeoutMs?: number
}

export interface Policy {
  readonly connectors: ReadonlyMap<string, Connector>
}

/*
 * The MCP policy of a connector whose upstream speaks MCP over the Streamable HTTP transport
 * (src/mcp/): which JSON-RPC messages a task may send to the server, decided before anything is
 * forwarded, and which tools, prompts and resources the server's lists may show it.
 */

/** A compiled name or URI pattern: exact, or with `*` wildcards. */
export interface NameMatcher {
  readonly source: string
  match(name: string): boolean
}

/** A rule for one kind of item the server offers: a tool (by name), a prompt (by name) or a resource (by URI). */
export interface McpRule {
  /** Unique within its connector, together with the connector's HTTP rules; appears in audit records and grants. */
  readonly id: string
  readonly match: NameMatcher
  readonly severity: Severity
  /** Tools and prompts: the check of the call's `arguments` (always an object, `{}` when absent). */
  readonly arguments: BodyValidator | undefined
  /** Tools and prompts: a call this rule allows waits for a person's yes (src/approvals/). */
  readonly approval?: ApprovalOptions | undefined
}

/** What a method other than tools/call, prompts/get and resources/* needs: a severity the grant must cover, or never. */
export type MethodRule = Severity | 'deny'

export interface McpPolicy {
  /** The path(s) below the connector where the server's MCP endpoint is; other paths follow the HTTP rules. */
  readonly endpoints: readonly PathMatcher[]
  /** Whether a tool without a rule takes its severity from its own annotations (read, write or admin). */
  readonly trustAnnotations: boolean
  readonly tools: readonly McpRule[]
  readonly prompts: readonly McpRule[]
  readonly resources: readonly McpRule[]
  /** By JSON-RPC method: the defaults (src/mcp/config.ts) with the connector's `methods` over them. */
  readonly methods: ReadonlyMap<string, MethodRule>
}
