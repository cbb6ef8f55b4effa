import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { getGlobalDispatcher, request } from 'undici'
import { createLogger } from '../../src/log.ts'
import { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import { EXPOSITION_CONTENT_TYPE } from '../../src/metrics/registry.ts'
import { RequestLog } from '../../src/proxy/request-log.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { parseExposition, promtoolCheck, series } from '../helpers/metrics.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'sk-observability-secret-0123456789abcdef'
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

function config(upstream: Upstream): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  echo:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-token, inject: bearer }
    rules:
      - { id: read-items, methods: [GET], path: /items/**, severity: read }
      - { id: upload, methods: [POST], path: /upload, severity: write, allow_body: true }
      - { id: approve-me, methods: [POST], path: /approve-me, severity: write, allow_body: true, approval: { timeout: 60s } }
  down:
    upstream: http://127.0.0.1:9
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-token, inject: bearer }
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
  unset:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: never-set, inject: bearer }
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
`
}

/** GET /metrics on the real admin listener, with an admin token of `role`. */
async function scrape(kv: TestKeyvalet, token: string): Promise<string> {
  const res = await request(`${kv.adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.body.text()
  assert.equal(res.statusCode, 200, text)
  assert.equal(res.headers['content-type'], EXPOSITION_CONTENT_TYPE)
  return text
}

describe('metrics, the request log line and trace context, end to end', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  let auditorToken: string
  const metrics = new KeyvaletMetrics()
  let logText = ''

  before(async () => {
    upstream = await startUpstream()
    const log = createLogger({ write: (line: string) => { logText += line } })
    kv = await startKeyvalet(config(upstream), { metrics, observers: [new RequestLog(log)], log, admin: {} })
    auditorToken = (await kv.adminToken('auditor')).token
    await kv.setSecret('echo-token', SECRET)
    key = (await kv.mintKey(['echo:write', 'down:read', 'unset:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  async function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    const res = await getGlobalDispatcher().request({ origin: kv.url, path, method: (opts.method ?? 'GET') as 'GET', headers: opts.headers ?? { authorization: `Bearer ${key}` }, body: opts.body ?? null })
    const text = await res.body.text()
    return { status: res.statusCode, text, requestId: String(res.headers['x-keyvalet-request-id']) }
  }

  it('counts exactly what was sent, passes promtool, logs one line per request, and carries the trace', async () => {
    const auth = { authorization: `Bearer ${key}` }
    const before = parseExposition(await scrape(kv, auditorToken))
    const seenBefore = upstream.received.length
    const auditBefore = (await kv.audit()).length
    const logBefore = logText.length

    const traced = await send('/echo/items/1', { headers: { ...auth, traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=abc' } })
    const fresh = await send('/echo/items/2')
    const invalid = await send('/echo/items/3', { headers: { ...auth, traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'vendor=dropped' } })
    const upload = await send('/echo/upload', { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'x'.repeat(1000) })
    const denied = [await send('/echo/items/1', { method: 'DELETE' }), await send('/echo/items/2', { method: 'DELETE' })]
    const anonymous = await send('/echo/items/1', { headers: {} })
    const unreachable = await send('/down/anything')
    const missing = await send('/unset/anything')
    const sent = 9
    assert.deepEqual([traced, fresh, invalid, upload].map((r) => r.status), [200, 200, 200, 200])
    assert.deepEqual([...denied, anonymous, unreachable, missing].map((r) => r.status), [403, 403, 401, 502, 502])

    // What the upstream received: four requests, each with keyvalet's traceparent.
    const received = upstream.received.slice(seenBefore)
    assert.equal(received.length, 4)
    const parts = received.map((r) => /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(r.headers.traceparent)))
    assert.ok(parts.every((p) => p !== null), JSON.stringify(received.map((r) => r.headers.traceparent)))
    const [t0, t1, t2] = parts as RegExpExecArray[]
    assert.equal(t0?.[1], TRACE, 'a valid incoming trace is continued')
    assert.notEqual(t0?.[2], PARENT, "the upstream's parent is keyvalet's own span")
    assert.equal(t0?.[3], '01', 'the sampled flag is kept')
    assert.equal(received[0]?.headers.tracestate, 'vendor=abc', 'tracestate goes on with a continued trace')
    assert.notEqual(t1?.[1], TRACE)
    assert.equal(t1?.[3], '00', 'a trace keyvalet starts is not sampled')
    assert.notEqual(t2?.[1], TRACE.toLowerCase(), 'an invalid traceparent (upper-case hex) starts a new trace')
    assert.equal(received[2]?.headers.tracestate, undefined, 'and its tracestate is dropped')

    // What the audit recorded: the trace id of each request that went through the stages.
    // (the scrape before is the admin call recorded first)
    const records = (await kv.audit()).slice(auditBefore).filter((r) => r.mode !== 'admin')
    assert.equal(records.length, sent)
    const byId = new Map(records.map((r) => [r.request_id, r]))
    assert.equal(byId.get(traced.requestId)?.trace_id, TRACE)
    assert.equal(byId.get(fresh.requestId)?.trace_id, t1?.[1])
    assert.equal(byId.get(invalid.requestId)?.trace_id, t2?.[1])
    assert.match(String(byId.get(denied[0]?.requestId ?? '')?.trace_id), /^[0-9a-f]{32}$/)
    assert.equal(byId.get(anonymous.requestId)?.connector, null)

    // The metrics: moved by exactly what was sent.
    const text = await scrape(kv, auditorToken)
    const check = promtoolCheck(text)
    if (check !== 'skip') assert.equal(check, undefined, `promtool check metrics: ${check}`)
    const after = parseExposition(text)
    const delta = (name: string, labels: Record<string, string> = {}): number => (after.get(series(name, labels)) ?? 0) - (before.get(series(name, labels)) ?? 0)
    const echo = { mode: 'gateway', connector: 'echo' }
    assert.equal(delta('keyvalet_requests_total', { ...echo, decision: 'allow', error: 'none' }), 4)
    assert.equal(delta('keyvalet_requests_total', { ...echo, decision: 'deny', error: 'policy_denied' }), 2)
    assert.equal(delta('keyvalet_requests_total', { mode: 'gateway', connector: '_none', decision: 'deny', error: 'task_key_missing' }), 1)
    assert.equal(delta('keyvalet_requests_total', { mode: 'gateway', connector: 'down', decision: 'error', error: 'upstream_unreachable' }), 1)
    assert.equal(delta('keyvalet_requests_total', { mode: 'gateway', connector: 'unset', decision: 'error', error: 'credential_unavailable' }), 1)
    assert.equal(delta('keyvalet_request_duration_seconds_count', echo), 6)
    assert.equal(delta('keyvalet_request_duration_seconds_bucket', { ...echo, le: '+Inf' }), 6)
    assert.equal(delta('keyvalet_upstream_duration_seconds_count', { connector: 'echo' }), 4)
    assert.equal(delta('keyvalet_upstream_duration_seconds_count', { connector: 'down' }), 1)
    assert.equal(delta('keyvalet_upstream_errors_total', { connector: 'down', kind: 'upstream_unreachable' }), 1)
    assert.equal(delta('keyvalet_request_bytes_total', echo), 1000)
    const relayed = [traced, fresh, invalid, upload].reduce((n, r) => n + Buffer.byteLength(r.text), 0)
    assert.equal(delta('keyvalet_response_bytes_total', echo), relayed)
    // The credential stage opened the secret for echo (4) and down (1); unset's is missing.
    assert.equal(delta('keyvalet_vault_operations_total', { operation: 'open', result: 'ok' }), 5)
    assert.equal(delta('keyvalet_vault_operations_total', { operation: 'open', result: 'failed' }), 1)
    assert.ok(delta('keyvalet_audit_commit_duration_seconds_count') >= 1)
    assert.equal(after.get('keyvalet_active_sessions'), 1)
    assert.equal(after.get('keyvalet_audit_queue_depth'), 0)
    assert.ok((after.get(series('keyvalet_open_connections', { listener: 'gateway' })) ?? 0) >= 1)
    for (const name of ['process_resident_memory_bytes', 'process_open_fds', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes']) assert.ok((after.get(name) ?? 0) > 0, name)
    assert.ok(after.has(series('nodejs_eventloop_lag_seconds', { stat: 'p99' })))
    // Bounded labels: no path, no user, no session anywhere in the exposition.
    for (const value of ['/items/1', 'alice', 'acme', 'ses_', 'task-1']) assert.ok(!text.includes(value), value)

    // The operator log: one request line per request, nothing secret in any line.
    const lines = logText.slice(logBefore).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    const requestLines = lines.filter((l) => l.msg === 'request')
    assert.equal(requestLines.length, sent)
    const lineOf = (id: string): Record<string, unknown> | undefined => requestLines.find((l) => l.request_id === id)
    assert.deepEqual(
      (({ level, mode, connector, method, decision, error, status, upstream_status, trace_id }) => ({ level, mode, connector, method, decision, error, status, upstream_status, trace_id }))(lineOf(traced.requestId) ?? {}),
      { level: 'info', mode: 'gateway', connector: 'echo', method: 'GET', decision: 'allow', error: null, status: 200, upstream_status: 200, trace_id: TRACE },
    )
    assert.equal(typeof lineOf(traced.requestId)?.latency_ms, 'number')
    assert.equal(lineOf(denied[0]?.requestId ?? '')?.error, 'policy_denied')
    const down = lineOf(unreachable.requestId)
    assert.equal(down?.level, 'warn')
    assert.equal((down?.detail as Record<string, unknown> | undefined)?.upstream_error, 'ECONNREFUSED')
    const unavailable = lineOf(missing.requestId)
    assert.equal(unavailable?.level, 'error')
    assert.equal((unavailable?.detail as Record<string, unknown> | undefined)?.why, 'secret_missing')
    const all = logText.slice(logBefore)
    for (const secret of [SECRET, key, key.slice(-20), 'x'.repeat(100)]) assert.ok(!all.includes(secret), 'the log holds no secret, task key or body')
  })

  it('approval metrics: the requests parked now, and each wait by how it ended, pass promtool', async () => {
    const operator = (await kv.adminToken('operator')).token
    const decide = async (verb: 'approve' | 'deny'): Promise<void> => {
      const { json } = await (await fetch(`${kv.adminUrl}/v1/approvals?wait=5`, { headers: { authorization: `Bearer ${operator}` } })).json().then((json) => ({ json: json as { approvals: { id: string }[] } }))
      const [pending] = json.approvals
      assert.ok(pending !== undefined, 'a parked request')
      const res = await fetch(`${kv.adminUrl}/v1/approvals/${pending.id}/${verb}`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' }, body: verb === 'deny' ? '{"reason":"no"}' : '{}' })
      assert.equal(res.status, 200, await res.text())
    }
    const parked = async (n: number): Promise<void> => {
      for (let i = 0; i < 500 && parseExposition(await scrape(kv, auditorToken)).get('keyvalet_approvals_pending') !== n; i++) await new Promise((r) => setTimeout(r, 10))
    }
    const before = parseExposition(await scrape(kv, auditorToken))
    assert.equal(before.get('keyvalet_approvals_pending'), 0)
    const post = () => send('/echo/approve-me', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"a":1}' })
    const first = post()
    await parked(1)
    const waiting = await scrape(kv, auditorToken)
    assert.equal(parseExposition(waiting).get('keyvalet_approvals_pending'), 1, 'one request parked')
    await decide('approve')
    assert.equal((await first).status, 200)
    const second = post()
    await parked(1)
    await decide('deny')
    assert.equal((await second).status, 403)
    await parked(0)

    const text = await scrape(kv, auditorToken)
    const check = promtoolCheck(text)
    if (check !== 'skip') assert.equal(check, undefined, `promtool check metrics: ${check}`)
    const after = parseExposition(text)
    const delta = (name: string, labels: Record<string, string>): number => (after.get(series(name, labels)) ?? 0) - (before.get(series(name, labels)) ?? 0)
    assert.equal(after.get('keyvalet_approvals_pending'), 0)
    assert.deepEqual(['approved', 'denied', 'expired', 'cancelled'].map((outcome) => delta('keyvalet_approval_decisions_total', { outcome })), [1, 1, 0, 0])
    assert.equal(delta('keyvalet_approval_wait_seconds_count', { outcome: 'approved' }), 1)
    assert.equal(delta('keyvalet_approval_wait_seconds_bucket', { outcome: 'denied', le: '3600' }), 1)
    assert.ok(delta('keyvalet_approval_wait_seconds_sum', { outcome: 'approved' }) > 0)
    // And the upstream received the approved request only; the audit has both decisions.
    assert.equal(upstream.received.filter((r) => r.url === '/approve-me').length, 1)
    const decisions = (await kv.audit()).filter((r) => r.rule === 'approve-me').map((r) => r.approval?.decision)
    assert.deepEqual(decisions, ['approved', 'denied'])
  })
})

describe('/metrics is for the admin and auditor roles only', () => {
  it('answers 403 to an operator token and 401 without one', async () => {
    const upstream = await startUpstream()
    const kv = await startKeyvalet(config(upstream), { metrics: new KeyvaletMetrics(), admin: {} })
    try {
      const operator = (await kv.adminToken('operator')).token
      const admin = (await kv.adminToken('admin')).token
      const status = async (headers: Record<string, string>): Promise<number> => {
        const res = await request(`${kv.adminUrl}/metrics`, { headers })
        await res.body.dump()
        return res.statusCode
      }
      assert.deepEqual([await status({ authorization: `Bearer ${operator}` }), await status({}), await status({ authorization: `Bearer ${admin}` })], [403, 401, 200])
    } finally {
      await kv.close()
      await upstream.close()
    }
  })
})
