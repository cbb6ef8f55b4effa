import type { AuditFields } from '../audit/record.ts'
import { ERROR_CATALOGUE } from '../errors.ts'
import type { RequestObserver } from '../proxy/observer.ts'
import type { Counter, Family, Histogram, Registry } from './registry.ts'

/** Seconds; from a cached answer on loopback to a slow model completion. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

/** Label values for what a record leaves empty, and for a value outside the bounded set. */
const NONE = 'none'
const OTHER = 'other'
/** The same for connectors: a leading underscore, which no connector name has. */
const NO_CONNECTOR = '_none'
const OTHER_CONNECTOR = '_other'
/** Connector names come from the configuration; past this many (reloads adding names), new ones fold into `other`. */
const MAX_CONNECTORS = 1000

const MODES = ['gateway', 'forward'] as const
/** MCP methods counted under their own name; anything else (a server's extension) is `other`. */
const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list', 'resources/read',
  'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'completion/complete', 'logging/setLevel',
])
/** MCP rule ids come from the configuration; past this many per connector, new ones fold into `other`. */
const MAX_MCP_SERIES = 2000
const DECISIONS = ['allow', 'deny', 'error'] as const
const KNOWN_ERRORS: ReadonlySet<string> = new Set(Object.keys(ERROR_CATALOGUE))

/** Failures of the upstream exchange itself, counted again by kind in keyvalet_upstream_errors_total. */
const UPSTREAM_KINDS: ReadonlySet<string> = new Set([
  'upstream_unreachable', 'upstream_address_refused', 'upstream_dns_failed', 'upstream_tls_failed', 'upstream_timeout',
  'upstream_response_invalid', 'upstream_reset', 'upstream_headers_too_large', 'credential_refresh_failed',
])

/** The series of one mode of one connector, resolved once. */
class ModeSeries {
  /** By decision index, then error code (`none` when allowed). */
  readonly outcomes: Map<string, Counter>[] = DECISIONS.map(() => new Map())
  readonly duration: Histogram
  readonly bytesIn: Counter
  readonly bytesOut: Counter

  readonly families: RequestFamilies
  readonly mode: string
  readonly connector: string

  constructor(families: RequestFamilies, mode: string, connector: string) {
    this.families = families
    this.mode = mode
    this.connector = connector
    this.duration = families.duration.labels(mode, connector)
    this.bytesIn = families.bytesIn.labels(mode, connector)
    this.bytesOut = families.bytesOut.labels(mode, connector)
    // The outcome every connector has: allowed. Refusals are created when first seen (bounded by the error catalogue).
    this.outcomes[0]?.set(NONE, families.requests.labels(mode, connector, 'allow', NONE))
  }

  outcome(decision: number, error: string): Counter {
    const byCode = this.outcomes[decision] as Map<string, Counter>
    let counter = byCode.get(error)
    if (counter === undefined) {
      const code = error === NONE || KNOWN_ERRORS.has(error) ? error : OTHER
      counter = this.families.requests.labels(this.mode, this.connector, DECISIONS[decision] as string, code)
      byCode.set(error, counter)
    }
    return counter
  }
}

class ConnectorSeries {
  readonly modes: ModeSeries[]
  readonly upstream: Histogram
  readonly upstreamErrors = new Map<string, Counter>()
  /** MCP messages by method, then rule id, then decision (0 allow, 1 deny). */
  readonly mcp = new Map<string, Map<string, Counter[]>>()
  #mcpSeries = 0

  readonly families: RequestFamilies
  readonly name: string

  constructor(families: RequestFamilies, name: string) {
    this.families = families
    this.name = name
    this.modes = MODES.map((mode) => new ModeSeries(families, mode, name))
    this.upstream = families.upstream.labels(name)
  }

  /**
   * The counters of an MCP message. The tool's own name is not a label (a server chooses it, and
   * may add tools at will): the rule that decided it is, and so is the tool for an exact-name rule.
   */
  mcpMessage(method: string, rule: string | null): Counter[] {
    const m = MCP_METHODS.has(method) ? method : OTHER
    let byRule = this.mcp.get(m)
    if (byRule === undefined) {
      byRule = new Map()
      this.mcp.set(m, byRule)
    }
    const r = rule ?? NONE
    let counters = byRule.get(r)
    if (counters === undefined) {
      const label = this.#mcpSeries < MAX_MCP_SERIES ? r : OTHER
      counters = byRule.get(label) ?? [this.families.mcp.labels(this.name, m, label, 'allow'), this.families.mcp.labels(this.name, m, label, 'deny')]
      if (label === r) this.#mcpSeries++
      byRule.set(r, counters)
    }
    return counters
  }

  upstreamError(kind: string): Counter {
    let counter = this.upstreamErrors.get(kind)
    if (counter === undefined) {
      counter = this.families.upstreamErrors.labels(this.name, kind)
      this.upstreamErrors.set(kind, counter)
    }
    return counter
  }
}

interface RequestFamilies {
  readonly requests: Family<Counter>
  readonly duration: Family<Histogram>
  readonly upstream: Family<Histogram>
  readonly upstreamErrors: Family<Counter>
  readonly bytesIn: Family<Counter>
  readonly bytesOut: Family<Counter>
  readonly mcp: Family<Counter>
  readonly unadmitted: Counter
}

/**
 * The request metrics, fed by the Recorder from each closing audit record: requests by mode,
 * connector, decision and error code; whole-request and upstream latency; upstream failures by
 * kind; bytes each way. Per request: a map lookup by connector name, one by error code, a few
 * additions and a histogram search; no string or object is built.
 */
export class RequestMetrics implements RequestObserver {
  readonly #families: RequestFamilies
  readonly #connectors = new Map<string, ConnectorSeries>()

  constructor(registry: Registry) {
    this.#families = {
      requests: registry.counter('keyvalet_requests_total', 'Requests settled, by listener, connector (_none: refused before one was known), decision and error code (none when allowed).', ['mode', 'connector', 'decision', 'error']),
      duration: registry.histogram('keyvalet_request_duration_seconds', 'Whole requests, from arrival to the closing audit record (a stream: until it ended).', REQUEST_BUCKETS, ['mode', 'connector']),
      upstream: registry.histogram('keyvalet_upstream_duration_seconds', "The upstream's part: from sending the request upstream to its answer's head, or to the failure.", REQUEST_BUCKETS, ['connector']),
      upstreamErrors: registry.counter('keyvalet_upstream_errors_total', 'Requests whose upstream exchange failed, by kind (the error code).', ['connector', 'kind']),
      bytesIn: registry.counter('keyvalet_request_bytes_total', 'Request body bytes received from sandboxes (and sent on upstream).', ['mode', 'connector']),
      bytesOut: registry.counter('keyvalet_response_bytes_total', 'Response body bytes relayed to sandboxes.', ['mode', 'connector']),
      mcp: registry.counter('keyvalet_mcp_messages_total', "JSON-RPC messages to MCP connectors, by method (other: a method outside MCP's own), the rule that decided (none: no rule named) and decision.", ['connector', 'method', 'rule', 'decision']),
      unadmitted: registry.counter('keyvalet_requests_unadmitted_total', 'Requests answered audit_unavailable on arrival, with no record of their own (the outage record counts them).').labels(),
    }
  }

  /** Resolves the series of these connectors now (at compile time, and again after a reload). */
  connectors(names: Iterable<string>): void {
    for (const name of names) this.#series(name)
  }

  settled(fields: AuditFields, upstreamMs: number | undefined): void {
    const modeIndex = fields.mode === 'gateway' ? 0 : fields.mode === 'forward' ? 1 : -1
    if (modeIndex < 0) return
    const series = this.#series(fields.connector ?? NO_CONNECTOR)
    const mode = series.modes[modeIndex] as ModeSeries
    const decision = fields.decision === 'allow' ? 0 : fields.decision === 'deny' ? 1 : 2
    const error = fields.error ?? NONE
    mode.outcome(decision, error).inc()
    mode.duration.observe(fields.latency_ms / 1000)
    mode.bytesIn.inc(fields.bytes_in)
    mode.bytesOut.inc(fields.bytes_out)
    if (upstreamMs !== undefined) series.upstream.observe(upstreamMs / 1000)
    if (UPSTREAM_KINDS.has(error)) series.upstreamError(error).inc()
    if (fields.mcp !== undefined) for (const m of fields.mcp) (series.mcpMessage(m.method, m.rule)[m.decision === 'allow' ? 0 : 1] as Counter).inc()
  }

  unadmitted(): void {
    this.#families.unadmitted.inc()
  }

  #series(name: string): ConnectorSeries {
    let series = this.#connectors.get(name)
    if (series === undefined) {
      const label = this.#connectors.size < MAX_CONNECTORS ? name : OTHER_CONNECTOR
      series = this.#connectors.get(label) ?? new ConnectorSeries(this.#families, label)
      this.#connectors.set(label, series)
    }
    return series
  }
}
