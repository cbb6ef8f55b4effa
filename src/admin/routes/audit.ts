import { setImmediate as nextTurn } from 'node:timers/promises'
import Type from 'typebox'
import { pipeLiveStream } from '../../audit/live-stream.ts'
import { requestRate } from '../../audit/request-rate.ts'
import { verifyAudit } from '../../audit/verify.ts'
import type { AuditFilter } from '../../store/store.ts'
import type { AdminDeps } from '../deps.ts'
import { invalid } from '../input.ts'
import { defineRoute } from '../route.ts'

const ROLES = ['admin', 'auditor'] as const
const NAME = Type.String({ minLength: 1, maxLength: 256 })
const FILTER = {
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Records at or after this time (RFC 3339).' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'Records before this time (RFC 3339).' })),
  agent: Type.Optional(NAME),
  user: Type.Optional(NAME),
  workspace: Type.Optional(NAME),
  task: Type.Optional(NAME),
  session: Type.Optional(Type.String({ pattern: '^ses_[0-9a-f]{16}$', description: 'A session id (ses_…).' })),
  connector: Type.Optional(NAME),
  decision: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('error')])),
  error: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$', description: 'An error code (docs/security.md), e.g. policy_denied.' })),
}
const SEQ = Type.String({ pattern: '^[0-9]{1,15}$' })
const RECORD = Type.Object({}, { additionalProperties: true, description: 'An audit record as written (docs/security.md): its fields, seq, time, prev and hash.' })
const PAGE = Type.Object({
  records: Type.Array(RECORD),
  cursors: Type.Array(Type.String(), { description: "Each record's place in the whole log, every instance's chain together (a record's own seq is its place in its instance's chain): pass one as `cursor`, or as `after` to the stream, to go on after that record." }),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` (with the same filters and order) for the next page; null on the last.' }),
})
const CHAIN = Type.Object({
  instance: Type.String({ description: "The keyvalet instance that wrote the chain; '' for the records from before per-instance chains." }),
  count: Type.Integer(),
  last_hash: Type.String({ description: 'The hash of its last record: anchor it elsewhere to detect a truncation later.' }),
  open: Type.Array(Type.Object({ seq: Type.Integer(), request_id: Type.String() }), { description: 'Streams with an open record and no closing one.' }),
})
const VERIFIED = Type.Object({
  ok: Type.Boolean(),
  count: Type.Integer({ description: 'Records verified, every chain together (before the first broken one, when not ok).' }),
  chains: Type.Optional(Type.Array(CHAIN, { description: 'Every chain, when ok: one per keyvalet instance that wrote records.' })),
  instance: Type.Optional(Type.String({ description: 'The instance whose chain breaks.' })),
  seq: Type.Optional(Type.Integer({ description: "The first broken or missing record in that instance's chain." })),
  problem: Type.Optional(Type.String({ description: 'hash_mismatch, chain_broken, seq_gap, unparseable or stream_unmatched.' })),
  message: Type.Optional(Type.String()),
})

const COUNT = Type.Object({ name: Type.String(), requests: Type.Integer(), refused: Type.Integer({ description: 'Of them, denied or failed.' }) })
const SUMMARY = Type.Object({
  since: Type.String({ format: 'date-time' }),
  until: Type.String({ format: 'date-time' }),
  bucket_minutes: Type.Integer(),
  buckets: Type.Array(Type.Object({
    start: Type.String({ format: 'date-time', description: 'A multiple of the bucket length since the epoch: the first and last bucket may reach outside the window.' }),
    allow: Type.Integer(), would_deny: Type.Integer({ description: 'Forwarded under report mode although the policy refuses it.' }), deny: Type.Integer(), error: Type.Integer(),
  }), { description: 'Requests per bucket of time and decision, oldest first, empty buckets included.' }),
  refusals: Type.Array(Type.Object({ code: Type.String(), count: Type.Integer() }), { description: 'Refused requests per error code, the most frequent first (at most 50 codes).' }),
  connectors: Type.Array(COUNT, { description: 'The busiest connectors, most requests first.' }),
  agents: Type.Array(COUNT, { description: 'The busiest agents, most requests first.' }),
})
const HOUR_MS = 3_600_000
/** At most this many buckets (a day by the minute, a week by the 10 minutes). */
const MAX_BUCKETS = 1440

/** The filter of a query, its times normalised to the form records carry (toISOString). */
function filterOf(query: Partial<Record<keyof typeof FILTER, string>>): AuditFilter {
  const time = (field: 'since' | 'until'): string | undefined => {
    const text = query[field]
    if (text === undefined) return undefined
    const ms = Date.parse(text)
    if (Number.isNaN(ms)) throw invalid(`${field} is not a time`)
    return new Date(ms).toISOString()
  }
  const { since: _s, until: _u, ...exact } = query
  const since = time('since')
  const until = time('until')
  return { ...exact, ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) }
}

/** The audit log over the admin API: query it, follow it live, verify its chain. */
export function auditRoutes(deps: AdminDeps) {
  return [
    defineRoute({
      method: 'GET', path: '/v1/audit', roles: ROLES, action: 'audit.query', response: PAGE,
      summary: 'Audit records matching every filter given, newest first (or oldest first), a page at a time.',
      query: Type.Object({
        ...FILTER,
        order: Type.Optional(Type.Union([Type.Literal('desc'), Type.Literal('asc')], { description: 'desc (default): newest first.' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Records per page; default 100.' })),
        cursor: Type.Optional(SEQ),
      }),
      async handle({ query, note }) {
        const { order = 'desc', limit = 100, cursor, ...filters } = query
        const rows = await deps.store.audit.query(filterOf(filters), { order, limit: limit + 1, ...(cursor === undefined ? {} : { after: Number(cursor) }) })
        const shown = rows.slice(0, limit)
        note({ count: shown.length })
        return { kind: 'json', body: { records: shown.map((r) => JSON.parse(r.line) as Record<string, unknown>), cursors: shown.map((r) => String(r.seq)), next_cursor: rows.length > limit ? String(shown.at(-1)?.seq) : null } }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/audit/summary', roles: ROLES, action: 'audit.summary', response: SUMMARY,
      summary: 'What the requests of a window of time (default: the last hour) came to, counted by the store: requests per bucket and decision, refusals per code, the busiest connectors and agents. Admin calls are not requests.',
      query: Type.Object({
        since: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the window (RFC 3339); default an hour before until.' })),
        until: Type.Optional(Type.String({ format: 'date-time', description: 'End of the window, exclusive (RFC 3339); default now.' })),
        bucket_minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 60, description: 'Length of a bucket; default 5.' })),
        top: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'How many connectors and agents to name; default 5.' })),
      }),
      async handle({ query }) {
        const { bucket_minutes: bucketMinutes = 5, top = 5 } = query
        const times = filterOf({ since: query.since, until: query.until })
        const until = times.until === undefined ? deps.clock() : Date.parse(times.until)
        const since = times.since === undefined ? until - HOUR_MS : Date.parse(times.since)
        if (!(since < until)) throw invalid('query.since must be before query.until')
        if ((until - since) / (bucketMinutes * 60_000) > MAX_BUCKETS) throw invalid(`query: the window holds more than ${MAX_BUCKETS} buckets; use longer buckets or a shorter window`)
        const window = { since: new Date(since).toISOString(), until: new Date(until).toISOString() }
        const counted = await deps.store.audit.summary({ ...window, top })
        const named = (c: { name: string; count: number; refused: number }) => ({ name: c.name, requests: c.count, refused: c.refused })
        return {
          kind: 'json',
          body: {
            ...window, bucket_minutes: bucketMinutes,
            buckets: requestRate(counted.minutes, { since, until, bucketMinutes }),
            refusals: counted.errors.map((e) => ({ code: e.name, count: e.count })),
            connectors: counted.connectors.map(named), agents: counted.agents.map(named),
          },
        }
      },
    }),
    defineRoute({
      method: 'GET', path: '/v1/audit/stream', roles: ROLES, action: 'audit.stream',
      summary: 'New audit records as they are committed, as server-sent events (id: the record\'s place in the whole log, event: record, data: the record), with the same filters; after=ID resumes. A subscriber that does not keep up gets event: dropped and the stream ends.',
      query: Type.Object({ ...FILTER, after: Type.Optional(SEQ) }),
      async handle({ query }) {
        const { after, ...filters } = query
        const filter = filterOf(filters)
        return {
          kind: 'stream',
          pipe: (res, signal) => pipeLiveStream(res, signal, {
            repo: deps.store.audit, filter, after: after === undefined ? undefined : Number(after), onCommitted: (listener) => deps.audit.onCommitted(listener),
          }),
        }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/audit/verify', roles: ROLES, action: 'audit.verify', response: VERIFIED,
      summary: 'Walks every hash chain (one per keyvalet instance): ok with each chain\'s count and last hash, or the instance and first record that is missing, altered or out of place.',
      async handle({ note }) {
        const result = await verifyAudit(deps.store.audit, await deps.openAuditKey(), { pause: () => nextTurn() })
        note({ ok: result.ok, count: result.count })
        if (result.ok) {
          const chains = result.chains.map((c) => ({ instance: c.instance, count: c.count, last_hash: c.lastHash, open: c.open.map((s) => ({ seq: s.seq, request_id: s.request_id })) }))
          return { kind: 'json', body: { ok: true, count: result.count, chains } }
        }
        return { kind: 'json', body: { ok: false, count: result.count, instance: result.instance, seq: result.seq, problem: result.problem, message: result.message } }
      },
    }),
  ] as const
}
