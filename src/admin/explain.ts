/**
 * `POST /v1/explain`: what keyvalet would decide for one request under a grant, without sending
 * anything. Pure: no upstream, no vault, no session, no clock.
 *
 * The same steps as the data plane, with its own code: the connector is found as route does it
 * (a gateway path `/<connector>/...`, or an absolute URL matched on the upstream origin and the
 * longest base path), the path is normalised by policy/path.ts (an ambiguous one is refused,
 * path_ambiguous), and policy/decide.ts decides; when a rule's JSON Schema needs the body, the
 * body given is read as decide's stage reads it (strict JSON, JSON content types only).
 *
 * Not explained: the checks that look at the values a real request carries beside the policy
 * (a task key or placeholder out of its slot, framing and hop-by-hop headers, the credential, the
 * egress address check); a real request can still be refused by those.
 */
import { KeyvaletError } from '../errors.ts'
import type { Connector, Grant, Policy } from '../model/policy.ts'
import { decide } from '../policy/decide.ts'
import type { BodyFacts, Decision } from '../policy/decision.ts'
import { normalisePath, splitTarget } from '../policy/path.ts'
import { parseStrictJson } from '../policy/strict-json.ts'
import { carriesBody, jsonBodyProblem } from '../proxy/headers.ts'
import { baseSegments, startsWith } from '../proxy/stages/route.ts'

export interface ExplainInput {
  readonly grants: readonly Grant[]
  /** Upper-case. */
  readonly method: string
  /** A gateway path (`/github/repos/acme/app`) or an absolute URL (`https://api.github.com/repos/acme/app`), query included. */
  readonly url: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}

export interface Explanation {
  readonly decision: 'allow' | 'deny'
  /** A policy reason (policy/decision.ts), or the error code of a refusal before the policy (connector_unknown, destination_refused, path_ambiguous). */
  readonly reason: string
  readonly rule: string | null
  /** How the decision came about, for the operator. */
  readonly detail: string
  readonly connector: string | null
  /** The path below the connector, as decided on (normalised segments). */
  readonly path: string | null
}

export function explain(policy: Policy, input: ExplainInput): Explanation {
  const refused = (reason: string, detail: string, connector: string | null = null): Explanation => ({ decision: 'deny', reason, rule: null, detail, connector, path: null })
  const target = requestTarget(input.url)
  let rawQuery: string
  let all: readonly string[]
  try {
    const split = splitTarget(target.path)
    rawQuery = split.rawQuery
    all = normalisePath(split.rawPath).segments
  } catch (err) {
    return refused('path_ambiguous', err instanceof KeyvaletError ? `the path is ambiguous (${String(err.detail?.why ?? err.code)})` : 'the path is ambiguous')
  }
  const found = target.origin === undefined ? byName(policy, all) : byOrigin(policy, target.origin, all)
  if ('refused' in found) return refused(found.refused, found.detail)
  const { connector, segments } = found
  const headers = { ...input.headers, ...(input.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(input.body)) }) }
  const args = {
    connector, grants: input.grants, method: input.method, segments: segments.length === 0 ? [''] : segments,
    query: new URLSearchParams(rawQuery), headers, carriesBody: carriesBody(headers),
  }
  let decision: Decision = decide(args)
  if (decision.effect === 'need_body') decision = decide({ ...args, body: bodyFacts(headers, input.body ?? '') })
  if (decision.effect === 'need_body') throw new Error('decide asked for the body twice')
  return { decision: decision.effect, reason: decision.reason, rule: decision.rule?.id ?? null, detail: decision.detail, connector: connector.name, path: `/${args.segments.join('/')}` }
}

/** The origin (absolute URL) and the raw request target (path and query, undecoded: as the listeners see it). */
function requestTarget(url: string): { origin: string | undefined; path: string } {
  if (url.startsWith('/')) return { origin: undefined, path: url }
  const match = /^(https?:\/\/[^/?#]+)([/?][^#]*)?$/i.exec(url)
  let origin: string | undefined
  try {
    origin = match === null ? undefined : new URL(match[1] as string).origin
  } catch {
    origin = undefined
  }
  if (match === null || origin === undefined) throw new KeyvaletError('admin_request_invalid', { message: 'url must be a gateway path (/connector/...) or an absolute http(s) URL without a fragment.' })
  const rest = match[2] ?? '/'
  return { origin, path: rest.startsWith('?') ? `/${rest}` : rest }
}

type Found = { readonly connector: Connector; readonly segments: readonly string[] } | { readonly refused: 'connector_unknown' | 'destination_refused'; readonly detail: string }

/** Gateway: the first segment names the connector. */
function byName(policy: Policy, segments: readonly string[]): Found {
  const name = segments[0] ?? ''
  const connector = policy.connectors.get(name)
  if (connector === undefined) return { refused: 'connector_unknown', detail: `no connector is named ${JSON.stringify(name.slice(0, 64))}` }
  return { connector, segments: segments.slice(1) }
}

/** Forward proxy: the connector of that origin whose base path prefixes the path, the longest first. */
function byOrigin(policy: Policy, origin: string, segments: readonly string[]): Found {
  const connector = [...policy.connectors.values()]
    .filter((c) => c.upstream.origin === origin && startsWith(segments, baseSegments(c)))
    .sort((a, b) => baseSegments(b).length - baseSegments(a).length)[0]
  if (connector === undefined) return { refused: 'destination_refused', detail: `no connector's upstream is ${origin.slice(0, 300)}` }
  return { connector, segments: segments.slice(baseSegments(connector).length) }
}

function bodyFacts(headers: Readonly<Record<string, string>>, body: string): BodyFacts {
  const problem = jsonBodyProblem(headers, 'checked')
  return problem === undefined ? parseStrictJson(Buffer.from(body)) : { invalid: problem }
}
