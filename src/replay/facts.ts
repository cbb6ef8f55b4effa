/**
 * A recorded request turned back into what decide looks at (DecideArgs), under another
 * configuration's connector, or the reason it cannot be. Exact or nothing: whenever a rule that
 * decide would reach reads a fact the record does not hold, the request is not replayable.
 */
import type { AuditRecord, DecidedOn } from '../audit/record.ts'
import type { Connector, Grant, Rule } from '../model/policy.ts'
import { decide } from '../policy/decide.ts'
import type { BodyFacts, DecideArgs } from '../policy/decision.ts'
import { parseGrant } from '../policy/grant.ts'
import { bodyReads } from './body-reads.ts'
import { covers, rebuild } from './body-snapshot.ts'

/** Why a record cannot be decided again exactly. Closed set; printed with its explanation (text.ts). */
export type NotReplayable =
  | 'recorded_before_replay' // written before keyvalet recorded decided_on
  | 'mcp' // an MCP endpoint: decided per JSON-RPC message, whose arguments the audit holds only as digests
  | 'body' // a rule that decide reaches checks the body against a JSON Schema that reads parts of it the audit did not record
  | 'query_value' // a rule that decide reaches checks a query parameter's value; the audit holds names only
  | 'query_names_cut' // the record's query names were cut short (50 names, 64 characters each)
  | 'header_value' // a rule checks a header value that was not recorded (secret-bearing, repeated, too long, or not named by a rule then)
  | 'header_names_cut' // the record's header names were cut short (64 names, 64 characters each) and a rule or the connector's header guard looks at them

/** The query names a record holds at most, and the length it cuts each to (proxy/audit-fields.ts). */
const QUERY_NAMES_KEPT = 50
const QUERY_NAME_KEPT = 64

export function replayArgs(record: AuditRecord, on: DecidedOn, connector: Connector): { args: DecideArgs; body: BodyFacts } | { notReplayable: NotReplayable } {
  const grants: Grant[] = on.grants.map(parseGrant)
  const query = new URLSearchParams(record.query_keys.map((k) => [k, '']))
  const headers: Record<string, string> = {}
  for (const name of [...on.header_names, ...Object.keys(on.headers)]) headers[name] = on.headers[name] ?? ''
  const args: DecideArgs = {
    connector, grants, method: record.method, segments: on.segments, query, headers, carriesBody: on.carries_body,
    ...(on.upgrade === undefined ? {} : { upgrade: on.upgrade }),
  }
  // decide tries the rules for this path and method in order, and the first that passes allows:
  // each is checked for facts the record lacks until one allows on the facts it holds. It asks
  // for the body (need_body) only once a rule's other checks and the grant pass: then that rule's
  // schema must read no part of the body the record lacks.
  const body = recordedBody(on)
  for (const rule of connector.rules) {
    if (!rule.methods.has(record.method) || !rule.paths.some((p) => p.match(on.segments))) continue
    const missing = missingFact(rule, record, on, connector)
    if (missing !== undefined) return { notReplayable: missing }
    const alone = { ...args, connector: { ...connector, rules: [rule] } }
    if (decide(alone).effect === 'need_body' && !bodyKnown(rule, on)) return { notReplayable: 'body' }
    if (decideWithRecordedBody(alone, body).effect === 'allow') break
  }
  return { args, body }
}

/** decide over recorded facts, given the recorded body when it asks for it. */
export function decideWithRecordedBody(args: DecideArgs, body: BodyFacts) {
  const decision = decide(args)
  if (decision.effect !== 'need_body') return decision
  const again = decide({ ...args, body })
  if (again.effect === 'need_body') throw new Error('decide asked for the body twice')
  return again
}

/**
 * The body as decide saw it: none carried reads as an empty body, which is not JSON (as the decide
 * stage reads it); one that was not acceptable JSON is invalid whatever the schema; else rebuilt
 * from the recorded parts (body-snapshot.ts), which bodyKnown checked are all a schema reads.
 */
function recordedBody(on: DecidedOn): BodyFacts {
  if (!on.carries_body) return { invalid: 'the request carried no body' }
  if (on.body_invalid === true) return { invalid: 'the body was not JSON a schema could check' }
  return { json: on.body_fields === undefined ? null : rebuild(on.body_fields) }
}

function bodyKnown(rule: Rule, on: DecidedOn): boolean {
  if (!on.carries_body || on.body_invalid === true) return true
  const schema = rule.body?.schema
  return schema !== undefined && on.body_fields !== undefined && covers(on.body_fields, bodyReads(schema))
}

function missingFact(rule: Rule, record: AuditRecord, on: DecidedOn, connector: Connector): NotReplayable | undefined {
  if (on.header_names_cut === true && (rule.headers.some((c) => on.headers[c.name] === undefined) || connector.headerGuard !== undefined)) return 'header_names_cut'
  const cut = record.query_keys.length >= QUERY_NAMES_KEPT || record.query_keys.some((k) => k.length >= QUERY_NAME_KEPT)
  if (cut && (rule.query.length > 0 || !rule.allowOtherQuery)) return 'query_names_cut'
  if (rule.query.some((c) => c.pattern !== undefined && record.query_keys.includes(c.name))) return 'query_value'
  for (const c of rule.headers) {
    if (c.pattern !== undefined && on.header_names.includes(c.name) && typeof on.headers[c.name] !== 'string') return 'header_value'
  }
  return undefined
}
