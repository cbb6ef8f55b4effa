import type { AssertionKeys } from '../assertion/keys.ts'
import type { UserValues } from '../attribution/user-value.ts'
import type { Config } from '../config/load.ts'
import type { Connector } from '../model/policy.ts'
import type { Sessions } from '../sessions/sessions.ts'
import type { Store } from '../store/store.ts'
import type { RequestContext } from './context.ts'
import type { Stage, StageList } from './pipeline.ts'
import type { AuditSink } from './request-audit.ts'
import type { Approvals } from '../approvals/approvals.ts'
import { Budgets } from '../budgets/budgets.ts'
import type { CounterLeases } from '../budgets/leases.ts'
import { createApprove, createApprovedCheck } from './stages/approve.ts'
import { createBudget } from './stages/budget.ts'
import { createAssert } from './stages/assert.ts'
import { createAttribute, createAttributionHeader } from './stages/attribute.ts'
import { createAuditGate } from './stages/audit-gate.ts'
import { createAuthenticate } from './stages/authenticate.ts'
import { createCopySource } from './stages/copy-source.ts'
import { createCredential, type Sources } from './stages/credential.ts'
import { createDecide } from './stages/decide.ts'
import { createForward } from './stages/forward.ts'
import { createInject } from './stages/inject.ts'
import { createMcpDecide, createMcpLists } from './stages/mcp.ts'
import { ToolAnnotations } from '../mcp/annotations.ts'
import { createRoute } from './stages/route.ts'
import type { Upstreams } from './upstreams.ts'

/** What the stages are built from: the services the handler made, and the configuration. */
export interface StageParts {
  readonly config: Config
  readonly sessions: Sessions
  readonly store: Store
  readonly audit: Pick<AuditSink, 'available'>
  readonly upstreams: Upstreams
  readonly sources: Sources
  readonly assertionKeys: AssertionKeys
  readonly userValues: UserValues
  /** Where requests that need a person's yes wait (src/approvals/). */
  readonly approvals: Approvals
  /** This instance's leases of budget counters, kept across configuration generations. */
  readonly leases: CounterLeases
  /** Epoch ms (budget windows). */
  readonly clock: () => number
}

/** The stage lists of one connector. */
export interface ConnectorStages {
  /** A request, up to the upstream's response head (the relay follows). */
  readonly request: StageList
  /** The same request sent once more after a 401, with a refreshed credential (handler.ts: retryAfter401). */
  readonly retry: StageList
  /** A WebSocket upgrade, up to the upgraded upstream connection (websocket.ts opens it). */
  readonly upgrade: StageList
}

export interface Composition {
  /** Every request, first: who sent it and to which connector; together they make the admitted context. */
  readonly admit: readonly Stage<RequestContext>[]
  /** By connector name: what runs once a request was routed to it. */
  readonly connectors: ReadonlyMap<string, ConnectorStages>
  /** What the budget stage spends from; the handler charges each exchange's use to it. */
  readonly budgets: Budgets
}

/**
 * Which stages run, in which order — the one place to add a stage. Built once at start, per
 * connector: a factory returns undefined for a connector that does not need its stage (no
 * assertion, no attribution, not aws_sigv4, no credential, no mcp), so that stage is left out of the
 * list instead of skipped on every request.
 *
 *   admit:   authenticate → route
 *   request: decide → budget → copy-source → attribute → approve → credential → inject | assert → attribution header → audit gate → approved-check → forward → mcp-lists
 *   retry:                                                          credential → inject | assert → attribution header → audit gate → approved-check → forward → mcp-lists
 *   upgrade: decide → budget → copy-source → attribute → approve → credential → inject | assert → attribution header → audit gate → approved-check
 *
 * (For a connector with `mcp`, decide is mcp-decide, which decides a request to the MCP endpoint
 * on its JSON-RPC messages and hands any other to decide.)
 *
 * (`|`: the stages before it prepare the admitted request, those after it send the outbound one.)
 */
export function composeStages(parts: StageParts): Composition {
  const { config } = parts
  const maxBody = config.limits.max_body_inspect_bytes
  const decide = createDecide(maxBody)
  const inject = createInject()
  const auditGate = createAuditGate(parts.audit)
  const forward = createForward(parts.upstreams, config.policy, config.limits.upstream_timeout_ms)
  const connectors = new Map<string, ConnectorStages>()
  const annotations = new ToolAnnotations()
  const budgets = new Budgets(parts.store.counters, config.budgets, parts.leases)
  const approvalLimits = { maxBodyBytes: config.limits.approval_body_bytes, maxPendingPerSession: config.limits.approvals_per_session, idleTimeoutMs: config.limits.idle_timeout_ms }
  for (const connector of config.policy.connectors.values()) {
    const approve = createApprove(parts.approvals, connector, config.policy, approvalLimits, parts.clock)
    const decided = present(createMcpDecide(connector, decide, maxBody, annotations), createBudget(budgets, budgets.for(connector.name), parts.clock), createCopySource(connector), createAttribute(parts.userValues, connector, maxBody), approve)
    const injected = present(createCredential(parts.sources, connector), inject)
    const signed = present(createAssert(parts.assertionKeys, connector), createAttributionHeader(parts.userValues, connector), auditGate, createApprovedCheck(connector))
    const received = present(forward, createMcpLists(connector, annotations))
    connectors.set(connector.name, {
      request: { prepare: [...decided, ...injected], send: [...signed, ...received] },
      retry: { prepare: injected, send: [...signed, ...received] },
      upgrade: { prepare: [...decided, ...injected], send: signed },
    })
  }
  return { admit: [createAuthenticate(parts.sessions, config.policy), createRoute(config.policy)], connectors, budgets }
}

/** The stages a connector needs, in the order given. */
function present<C extends RequestContext>(...stages: (Stage<C> | undefined)[]): Stage<C>[] {
  return stages.filter((stage) => stage !== undefined)
}

/** The lists of the connector route chose (route only chooses configured connectors). */
export function stagesFor(composition: Composition, connector: Connector): ConnectorStages {
  const stages = composition.connectors.get(connector.name)
  if (stages === undefined) throw new Error(`no stage list for connector ${connector.name}`)
  return stages
}
