import type { Decision } from '../policy/decision.ts'
import type { Connector } from '../model/policy.ts'
import type { OutboundRequest } from '../credentials/kind.ts'
import type { CredentialSource, Token } from '../credentials/source.ts'
import type { MaskPatterns } from '../redact/patterns.ts'
import type { Session } from '../model/session.ts'
import type { Trace } from './trace.ts'
import type { SandboxRequest } from './exchange.ts'
import type { McpAuditEntry } from '../audit/record.ts'
import type { McpDecision } from '../mcp/decide.ts'
import type { Admission } from '../budgets/budgets.ts'
import type { ApprovalOptions } from '../model/approval.ts'
import type { ModelUsage } from '../budgets/usage.ts'
import type { KeyvaletError } from '../errors.ts'
import type { UpstreamResponse } from './upstream-exchange.ts'

/**
 * The typed per-request record that stages fill in, in order. A field is set by exactly one stage
 * (named beside it); later stages may read it. The runner turns it into the audit record.
 */
export interface RequestContext {
  readonly id: string
  /** Which listener: gateway (`/<connector>/...`), forward (absolute-form or inside an intercepted tunnel). */
  readonly mode: 'gateway' | 'forward'
  readonly req: SandboxRequest
  /** forward mode: where the request goes (from the absolute-form target or the tunnel's CONNECT). */
  readonly target?: ForwardTarget
  /** forward mode, inside an intercepted tunnel: the task key its CONNECT authenticated with (a request outside one carries its own Proxy-Authorization). */
  readonly proxyKey?: string
  /** process.hrtime.bigint() at arrival. */
  readonly started: bigint
  /** The W3C trace this request is part of (continued from its traceparent, or started here). */
  readonly trace: Trace
  /** The protocol an upgrade request asks for (lower-case), set by the listener. */
  readonly upgrade?: string
  /** handler: the version of the configuration the request runs under, taken once when it starts (config/version.ts). */
  configVersion?: string
  /** handler: aborted when the sandbox goes away before its answer is complete, or when `cut`. */
  signal?: AbortSignal
  /** handler: aborts `signal` with a reason, which becomes the request's outcome (forward's upstream timeout). */
  cut?: (reason: KeyvaletError) => void
  /** authenticate (also set for a revoked or expired key, for the audit record only: the pipeline stops there) */
  session?: Session
  /** authenticate (gateway): the WWW-Authenticate challenge a refused task key is answered with, when the connector's slot is HTTP Basic. */
  challenge?: string
  /** route */
  connector?: Connector
  /** route: normalised segments below the connector, and the raw path to send (upstream base included). */
  segments?: readonly string[]
  path?: string
  rawQuery?: string
  /** decide */
  decision?: Decision
  /** decide: the refusal a connector or rule in report mode did not enforce (the audit records it as would_deny). */
  wouldDeny?: { readonly reason: string; readonly rule: string | null; readonly why: string }
  /** mcp-decide: a request to an MCP endpoint as decided (src/proxy/stages/mcp.ts); mcp-lists reads it. */
  mcp?: McpExchange
  /** budget: the soft budget (one with `approval`) the request is over: approve parks it instead of a refusal. */
  overBudget?: { readonly budget: string; readonly options: ApprovalOptions }
  /** budget: the counters the request was admitted against, which the handler charges with what the exchange used. */
  budget?: Admission
  /** approve: the approval the request waited for (src/approvals/), and what became of it; the check before forward compares its digest. */
  approval?: ApprovalFacts
  /** relay: the model usage the response reported (connectors with `usage`). */
  usage?: ModelUsage
  /** copy-source: the S3 copy source an aws_sigv4 request names, decided readable under the grant. */
  copySource?: { readonly path: string; readonly rule: string }
  /** decide: the body it read, for the audit record's decided_on: its sha256 (`sha256:` and hex), and its JSON (undefined when it was not acceptable JSON). */
  decidedBody?: { readonly digest: string; readonly json: unknown }
  /** decide: the body, when a rule needed to read it; attribute: the body rewritten with the user. */
  body?: Buffer
  /** credential: the value, what the audit names it, the forms of it to mask, and the source it came from. The value lives only here and in outbound headers. */
  credential?: { readonly label: string; readonly value: string; readonly mask: MaskPatterns; readonly token: Token; readonly source: CredentialSource }
  /** inject: what will be sent upstream. */
  outbound?: OutboundRequest
  /** assert: the signed assertion added (the token is masked in the response like the credential; only kid and jti are audited). */
  assertion?: { readonly kid: string; readonly jti: string; readonly token: string }
  /** handler: set when the request was sent a second time after a 401 with a refreshed credential. */
  retried?: boolean
  /** forward: milliseconds from sending upstream to the answer's head or the failure (summed over a retry). */
  upstreamMs?: number
  /** forward: the upstream's response head and body, for the relay. */
  upstream?: UpstreamResponse
  /** relay */
  upstreamStatus?: number
  bytesIn: number
  bytesOut: number
  redactions: number
}

/**
 * The request once authenticate and route have run: who sent it, to which connector, and the exact
 * path. Every stage after them takes this form (pipeline.ts checks it once, between the phases).
 */
export interface AdmittedContext extends RequestContext {
  readonly session: Session
  readonly connector: Connector
  readonly segments: readonly string[]
  readonly path: string
  readonly rawQuery: string
}

/** The admitted request once inject has built what will be sent upstream: the stages that send take this form. */
export interface OutboundContext extends AdmittedContext {
  readonly outbound: OutboundRequest
}

/** What the audit record and the check before forward need of a request's approval. */
export interface ApprovalFacts {
  readonly id: string
  readonly state: 'approved' | 'denied' | 'expired' | 'cancelled' | 'pending'
  readonly approver: { readonly id: string; readonly name: string } | undefined
  readonly reason: string | undefined
  readonly waitedMs: number
  /** The digest of the request as approved (approvals/digest.ts). */
  readonly digest: string
  /** True when an earlier approval of identical requests for this session let it through without asking. */
  readonly remembered: boolean
}

/** The upstream's response head and body (upstream-exchange.ts), which forward puts on the context for the relay. */
export type { UpstreamResponse }

export interface ForwardTarget {
  /** Lower-case scheme://host[:port], default port omitted, as URL.origin writes it. */
  readonly origin: string
  /** host[:port] the Host header must name (default port omitted, lower-case). */
  readonly authority: string
  /** Origin-form path and query, exactly as received. */
  readonly requestTarget: string
  /** Set inside an intercepted tunnel: the CONNECT authority that the SNI and Host had to match. */
  readonly tunnel?: string
}

/** What decide made of a request to an MCP endpoint. */
export interface McpExchange {
  /** The rule that allowed it (its first message's), for the record's `rule`. */
  readonly rule: string | undefined
  /**
   * The decision of each JSON-RPC message of a POST (of the request itself for GET and DELETE),
   * in order: what a later stage (an approval, a budget per tool) acts on.
   */
  readonly decisions: readonly McpDecision[]
  /** One per JSON-RPC message of a POST, for the audit record; none for GET and DELETE. */
  readonly messages: readonly McpAuditEntry[]
  /** Whether the answer may carry a list to narrow (a list request, or the server's stream). */
  readonly narrow: boolean
  /** Where the server's trusted tool annotations for this exchange are learned (mcp/annotations.ts). */
  readonly annotationsKey: string
}
