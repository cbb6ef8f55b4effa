import type { DecidedOn } from '../audit/record.ts'
import type { BodyValidator, Connector, Grant } from '../model/policy.ts'
import { bodyReads, type BodyRead } from '../replay/body-reads.ts'
import { snapshot } from '../replay/body-snapshot.ts'
import { formatGrant } from '../policy/grant.ts'
import type { RequestContext } from './context.ts'
import { carriesBody } from './headers.ts'

/** Header names whose values are never recorded, whatever a rule says: they carry credentials or sessions. */
const SECRET_BEARING = /auth|token|secret|key|cookie|session|passw|signature|credential/i
const MAX_VALUE = 256
/** Header names kept, and their length: a record stays small whatever the sandbox sends. */
const MAX_NAMES = 64
const MAX_NAME = 64

/**
 * The `decided_on` of a request's audit record, once the HTTP decide has decided it; {} otherwise
 * (refused before it, or an MCP endpoint, decided per message). Header values only of the headers
 * the connector's rules name, and not of a secret-bearing one; of a body a rule's schema had read,
 * its digest and the parts of it the connector's schemas look at. The record is masked afterwards
 * like every other field (audit-fields.ts). Undefined when there is nothing to record.
 */
export function decidedOn(ctx: RequestContext): DecidedOn | undefined {
  const { decision, connector, session, segments } = ctx
  if (decision === undefined || decision.effect === 'need_body' || connector === undefined || session === undefined || segments === undefined) return undefined
  const headers: Record<string, string | null> = {}
  for (const name of namedHeaders(connector)) {
    const value = ctx.req.headers[name]
    if (value === undefined) continue
    const text = Array.isArray(value) ? value.join(', ') : value
    headers[name] = Array.isArray(value) || SECRET_BEARING.test(name) || text.length > MAX_VALUE ? null : text
  }
  return {
    grants: grantTexts(session.grants),
    segments: [...segments],
    ...headerNames(Object.keys(ctx.req.headers)),
    headers,
    carries_body: carriesBody(ctx.req.headers),
    ...(ctx.upgrade === undefined ? {} : { upgrade: ctx.upgrade }),
    ...bodyFacts(connector, ctx.decidedBody),
  }
}

/** The body's digest, and the parts of it the connector's body schemas read (replay/body-snapshot.ts). */
function bodyFacts(connector: Connector, body: RequestContext['decidedBody']): Pick<DecidedOn, 'body_digest' | 'body_invalid' | 'body_fields'> {
  if (body === undefined) return {}
  if (body.json === undefined) return { body_digest: body.digest, body_invalid: true }
  const reads = connector.rules.flatMap((r) => r.body === undefined ? [] : readsOf(r.body))
  return { body_digest: body.digest, body_fields: snapshot(body.json, reads) }
}

/** A schema's reads, worked out once per compiled schema (a configuration's rules are never mutated). */
const READS = new WeakMap<BodyValidator, readonly BodyRead[]>()
function readsOf(body: BodyValidator): readonly BodyRead[] {
  let reads = READS.get(body)
  if (reads === undefined) READS.set(body, reads = body.schema === undefined ? [] : bodyReads(body.schema))
  return reads
}

/** The headers a connector's rules name, and a session's grants as written: worked out once per object, not per request (neither is ever mutated). */
const NAMED = new WeakMap<Connector, readonly string[]>()
function namedHeaders(connector: Connector): readonly string[] {
  let names = NAMED.get(connector)
  if (names === undefined) NAMED.set(connector, names = [...new Set(connector.rules.flatMap((r) => r.headers.map((h) => h.name)))])
  return names
}
const GRANTS = new WeakMap<readonly Grant[], readonly string[]>()
function grantTexts(grants: readonly Grant[]): string[] {
  let texts = GRANTS.get(grants)
  if (texts === undefined) GRANTS.set(grants, texts = grants.map(formatGrant))
  return [...texts]
}

function headerNames(names: readonly string[]): Pick<DecidedOn, 'header_names' | 'header_names_cut'> {
  const kept = names.filter((n) => n.length <= MAX_NAME).slice(0, MAX_NAMES)
  return kept.length === names.length ? { header_names: kept } : { header_names: kept, header_names_cut: true }
}
