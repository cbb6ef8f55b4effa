import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { AdminRole } from '../../src/model/admin-token.ts'
import { AuditWriter } from '../../src/audit/audit-writer.ts'
import type { AuditFields } from '../../src/audit/record.ts'
import { auditPathFor } from '../../src/store/sqlite-store.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

function config(upstream: Upstream): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  github:
    upstream: ${upstream.url}/gh
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read-issues, methods: [GET], path: /issues/**, severity: read }]
  crm:
    upstream: ${upstream.url}/crm
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: reports, methods: [GET], path: /reports/**, severity: read }]
`
}

const OTHER_FIELDS: AuditFields = {
  request_id: '', mode: 'gateway', session: null, agent: 'other-bot', user: null, workspace: null, task: null, connector: null,
  method: 'GET', path: '/x', query_keys: [], decision: 'deny', reason: 'task_key_missing', rule: null, credential: null,
  status: 401, upstream_status: null, error: 'task_key_missing', bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 1,
}

async function call(kv: TestKeyvalet, method: string, path: string, token: string) {
  const res = await fetch(`${kv.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
  const text = await res.text()
  return { status: res.status, text, json: (text === '' ? undefined : JSON.parse(text)) as any, error: res.headers.get('x-keyvalet-error') }
}

/** Reads server-sent events from a real fetch stream until `count` records arrived (bounded). */
async function readEvents(res: Response, count: number): Promise<{ id: number; event: string; data: string }[]> {
  const reader = res.body?.getReader()
  if (reader === undefined) throw new Error('no body')
  const events: { id: number; event: string; data: string }[] = []
  let text = ''
  const deadline = Date.now() + 10_000
  while (events.length < count && Date.now() < deadline) {
    const { value, done } = await reader.read()
    if (done) break
    text += Buffer.from(value).toString('utf8')
    let end: number
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end)
      text = text.slice(end + 2)
      const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]))
      if (fields.event !== undefined) events.push({ id: Number(fields.id), event: fields.event, data: fields.data ?? '' })
    }
  }
  await reader.cancel()
  return events
}

describe('admin API: the audit log (query, live stream, verify)', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const tokens = {} as Record<AdminRole, string>
  const keys = {} as Record<'a' | 'b', { key: string; session: string }>
  const send = async (who: 'a' | 'b', path: string): Promise<number> => {
    const res = await fetch(`${kv.url}${path}`, { headers: { authorization: `Bearer ${keys[who].key}` } })
    await res.text()
    return res.status
  }
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: {} })
    for (const role of ['admin', 'operator', 'auditor'] as const) tokens[role] = (await kv.adminToken(role)).token
    keys.a = await kv.mintKey(['github:read', 'crm:read'], { agent: 'bot-a' })
    keys.b = await kv.mintKey(['github:read'], { agent: 'bot-b' })
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('GET /v1/audit: filters by agent, session, connector, decision, error and time, pages both ways by cursor; admin and auditor only', async () => {
    const start = new Date(kv.now).toISOString()
    assert.equal(await send('a', '/github/issues/1'), 200)
    assert.equal(await send('a', '/crm/reports/1'), 200)
    assert.equal(await send('a', '/crm/other'), 403)
    assert.equal(await send('b', '/github/issues/2'), 200)
    assert.equal(await send('b', '/crm/reports/2'), 403)
    const query = async (q: string, role: AdminRole = 'auditor') => call(kv, 'GET', `/v1/audit?${q}`, tokens[role])
    const paths = async (q: string) => ((await query(q)).json.records as AuditRecord[]).map((r) => r.path)
    assert.deepEqual(await paths('agent=bot-a&order=asc'), ['/gh/issues/1', '/crm/reports/1', '/crm/other'])
    assert.deepEqual(await paths('agent=bot-a'), ['/crm/other', '/crm/reports/1', '/gh/issues/1'], 'newest first by default')
    assert.deepEqual(await paths(`session=${keys.b.session}&order=asc`), ['/gh/issues/2', '/crm/reports/2'])
    assert.deepEqual(await paths('connector=crm&decision=deny&order=asc'), ['/crm/other', '/crm/reports/2'])
    assert.deepEqual(await paths('error=policy_denied&agent=bot-b'), ['/crm/reports/2'])
    assert.deepEqual(await paths('workspace=acme&user=alice&task=task-1&decision=allow&order=asc'), ['/gh/issues/1', '/crm/reports/1', '/gh/issues/2'])
    assert.deepEqual(await paths(`since=${encodeURIComponent(start)}&until=2000-01-01T00:00:00Z`), [])
    assert.equal((await paths(`since=${encodeURIComponent(start)}&connector=github`)).length, 2)

    const seen: string[] = []
    let cursor: string | null = null
    for (let i = 0; i < 5; i++) {
      const page: Awaited<ReturnType<typeof query>> = await query(`agent=bot-a&limit=2&order=asc${cursor === null ? '' : `&cursor=${cursor}`}`)
      seen.push(...(page.json.records as AuditRecord[]).map((r) => r.path ?? ''))
      cursor = page.json.next_cursor
      if (cursor === null) break
    }
    assert.deepEqual(seen, ['/gh/issues/1', '/crm/reports/1', '/crm/other'])

    assert.equal((await query('agent=bot-a', 'admin')).status, 200)
    assert.deepEqual([(await query('agent=bot-a', 'operator')).status, (await query('agent=bot-a', 'operator')).error], [403, 'admin_role_forbidden'])
    const bad = await query('decision=maybe')
    assert.deepEqual([bad.status, bad.error], [400, 'admin_request_invalid'])
    assert.match(bad.json.error.message, /decision/)
    assert.equal((await query('since=yesterday')).status, 400)
    assert.ok((await kv.audit()).some((r) => r.action === 'audit.query' && r.mode === 'admin'), 'every query is itself audited')
  })

  it('GET /v1/audit/stream: new records as they are committed, filtered, in seq order; after=SEQ resumes', async () => {
    const res = await fetch(`${kv.adminUrl}/v1/audit/stream?agent=bot-a`, { headers: { authorization: `Bearer ${tokens.auditor}` } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    const reading = readEvents(res, 3)
    // The stream starts at the head: wait (bounded) until it has subscribed before sending.
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(await send('b', '/github/issues/9'), 200)
    assert.equal(await send('a', '/github/issues/10'), 200)
    assert.equal(await send('a', '/crm/nope'), 403)
    assert.equal(await send('a', '/crm/reports/11'), 200)
    const events = await reading
    const records = events.map((e) => JSON.parse(e.data) as AuditRecord)
    assert.deepEqual(events.map((e) => e.event), ['record', 'record', 'record'])
    assert.deepEqual(records.map((r) => [r.agent, r.path, r.decision]), [['bot-a', '/gh/issues/10', 'allow'], ['bot-a', '/crm/nope', 'deny'], ['bot-a', '/crm/reports/11', 'allow']])
    assert.deepEqual(events.map((e) => e.id), records.map((r) => r.seq))
    assert.ok(records[0] !== undefined && records[1] !== undefined && records[0].seq < records[1].seq)
    assert.ok(records.every((r) => typeof r.config_version === 'string'))

    const resumed = await fetch(`${kv.adminUrl}/v1/audit/stream?agent=bot-a&after=${records[0]?.seq}`, { headers: { authorization: `Bearer ${tokens.admin}` } })
    assert.deepEqual((await readEvents(resumed, 2)).map((e) => e.id), records.slice(1).map((r) => r.seq))
    assert.equal((await call(kv, 'GET', '/v1/audit/stream', tokens.operator)).status, 403)
  })

  it('GET /v1/audit after more requests than one catch-up copies: the audit indexes them in arrears by itself, and a query right after a request finds it, as the whole log says', async () => {
    const e = await kv.mintKey(['github:read'], { agent: 'arrears-bot' })
    const send = async (n: number) => {
      const res = await fetch(`${kv.url}/github/issues/${n}`, { headers: { authorization: `Bearer ${e.key}` } })
      return [res.status, await res.text()]
    }
    const upstreamBefore = upstream.received.length
    for (let n = 0; n < 300; n++) assert.equal((await send(n))[0], 200)
    // The engine caught up by itself (in the turn after each 256th of its commits): most are indexed now.
    const location = kv.runtime.storeLocation
    assert.equal(location.kind, 'sqlite')
    const raw = new DatabaseSync(auditPathFor(location.kind === 'sqlite' ? location.path : ''), { readOnly: true })
    const high = (table: string) => Number(raw.prepare(`SELECT ifnull(max(seq), 0) AS seq FROM ${table}`).get()?.seq)
    const [indexed, total] = [high('audit_facets'), high('audit')]
    raw.close()
    assert.ok(total - indexed < 300 && indexed > 0, `indexed up to ${indexed} of ${total}`)

    // One more: the query right after it reads it from the tail, not yet indexed, without waiting.
    const [status, body] = await send(300)
    assert.equal(status, 200)
    assert.equal(upstream.received.length, upstreamBefore + 301)
    assert.equal(upstream.received.at(-1)?.url, '/gh/issues/300')
    const newest = await call(kv, 'GET', '/v1/audit?agent=arrears-bot&limit=1', tokens.auditor)
    assert.deepEqual(newest.json.records.map((r: AuditRecord) => [r.path, r.status]), [['/gh/issues/300', 200]])
    assert.equal((JSON.parse(body as string) as { url: string }).url, '/gh/issues/300', 'the client got the upstream\'s answer')

    const paths: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 5; page++) {
      const got: Awaited<ReturnType<typeof call>> = await call(kv, 'GET', `/v1/audit?agent=arrears-bot&order=asc&limit=100${cursor === null ? '' : `&cursor=${cursor}`}`, tokens.auditor)
      paths.push(...(got.json.records as AuditRecord[]).map((r) => r.path ?? ''))
      cursor = got.json.next_cursor
      if (cursor === null) break
    }
    const oracle = (await kv.audit()).filter((r) => r.agent === 'arrears-bot' && r.mode === 'gateway').map((r) => r.path)
    assert.equal(oracle.length, 301)
    assert.deepEqual(paths, oracle, 'indexed and tail together: every record once, in order')
  })

  it('GET /v1/audit gives each record its cursor in the whole log: with a second instance\'s chain beside this one\'s, the page, the next page and the stream go on from it', async () => {
    // Another keyvalet instance on the same store: a chain of its own, whose seqs restart at 1.
    const other = await AuditWriter.start({ store: kv.runtime.storeLocation, key: await kv.runtime.openAuditKey(), reserveBytes: kv.runtime.config.auditReserveBytes })
    try {
      for (let i = 0; i < 3; i++) await other.append({ ...OTHER_FIELDS, request_id: `req_other_${i}` })
    } finally {
      await other.close()
    }
    const page = await call(kv, 'GET', '/v1/audit?agent=other-bot&limit=2', tokens.auditor)
    assert.equal(page.status, 200, page.text)
    const rows = await kv.runtime.store.audit.query({ agent: 'other-bot' }, { order: 'desc', limit: 3 })
    assert.deepEqual(page.json.cursors, rows.slice(0, 2).map((r) => String(r.seq)))
    assert.deepEqual(page.json.records.map((r: AuditRecord) => [r.instance, r.seq]), [[other.instance, 3], [other.instance, 2]])
    const next = await call(kv, 'GET', `/v1/audit?agent=other-bot&limit=2&cursor=${page.json.cursors[1]}`, tokens.auditor)
    assert.deepEqual(next.json.records.map((r: AuditRecord) => r.request_id), ['req_other_0'])
    const resumed = await fetch(`${kv.adminUrl}/v1/audit/stream?agent=other-bot&after=${page.json.cursors[1]}`, { headers: { authorization: `Bearer ${tokens.auditor}` } })
    const events = await readEvents(resumed, 1)
    assert.deepEqual(events.map((e) => [String(e.id), (JSON.parse(e.data) as AuditRecord).request_id]), [[page.json.cursors[0], 'req_other_2']])
  })

  it('GET /v1/audit/summary: requests per bucket and decision, refusals per code, busiest connectors and agents, as the records of the window say; admin calls are not requests', async () => {
    const c = await kv.mintKey(['github:read'], { agent: 'rate-gh' })
    const d = await kv.mintKey(['crm:read'], { agent: 'rate-crm' })
    const start = new Date().toISOString()
    const get = async (key: string, path: string) => (await fetch(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } }).then(async (r) => { await r.text(); return r.status }))
    assert.deepEqual([
      await get(c.key, '/github/issues/1'), await get(c.key, '/github/issues/2'), await get(c.key, '/github/pulls'),
      await get(d.key, '/crm/reports/1'), await get('kvt_notAKeyAtAll', '/crm/reports/2'),
    ], [200, 200, 403, 200, 401])
    assert.equal((await call(kv, 'GET', '/v1/audit', 'kva_wrong')).status, 401)
    const until = new Date(Date.now() + 1000).toISOString()
    const summary = await call(kv, 'GET', `/v1/audit/summary?since=${encodeURIComponent(start)}&until=${encodeURIComponent(until)}&bucket_minutes=1&top=1`, tokens.auditor)
    assert.equal(summary.status, 200, summary.text)

    // The oracle: the records of the window, read whole.
    const records = (await kv.audit()).filter((r) => r.time >= start && r.time < until && (r.mode === 'gateway' || r.mode === 'forward'))
    assert.equal(records.length, 5)
    const total = (decision: string) => summary.json.buckets.reduce((n: number, b: Record<string, number>) => n + (b[decision] ?? 0), 0)
    assert.deepEqual(['allow', 'deny', 'error', 'would_deny'].map(total), [3, 2, 0, 0])
    assert.ok(summary.json.buckets.length >= 1 && summary.json.buckets.length <= 2, 'one bucket per minute of the window')
    assert.equal(summary.json.bucket_minutes, 1)
    assert.deepEqual(summary.json.refusals, [{ code: 'policy_denied', count: 1 }, { code: 'task_key_malformed', count: 1 }])
    assert.deepEqual(records.filter((r) => r.decision !== 'allow').map((r) => r.error).sort(), ['policy_denied', 'task_key_malformed'])
    assert.deepEqual(summary.json.connectors, [{ name: 'github', requests: 3, refused: 1 }], 'the busiest one only (top=1)')
    assert.deepEqual(summary.json.agents, [{ name: 'rate-gh', requests: 3, refused: 1 }])

    // Default: the last hour before now, in 5-minute buckets aligned on the clock.
    kv.now = Date.now()
    const hour = await call(kv, 'GET', '/v1/audit/summary', tokens.admin)
    assert.equal(hour.status, 200, hour.text)
    assert.equal(Date.parse(hour.json.until) - Date.parse(hour.json.since), 3_600_000)
    assert.equal(hour.json.bucket_minutes, 5)
    assert.ok([12, 13].includes(hour.json.buckets.length), String(hour.json.buckets.length))
    assert.ok(hour.json.buckets.every((b: { start: string }) => Date.parse(b.start) % 300_000 === 0))
    assert.ok(hour.json.buckets.reduce((n: number, b: { allow: number }) => n + b.allow, 0) >= 3, 'the hour holds the requests above')

    const refused = await call(kv, 'GET', '/v1/audit/summary', tokens.operator)
    assert.deepEqual([refused.status, refused.error], [403, 'admin_role_forbidden'])
    for (const q of [`since=${encodeURIComponent(until)}&until=${encodeURIComponent(start)}`, 'bucket_minutes=0', 'since=2000-01-01T00:00:00Z&bucket_minutes=1', 'top=21']) {
      const bad = await call(kv, 'GET', `/v1/audit/summary?${q}`, tokens.auditor)
      assert.deepEqual([bad.status, bad.error], [400, 'admin_request_invalid'], q)
    }
    assert.ok((await kv.audit()).some((r) => r.action === 'audit.summary' && r.mode === 'admin'), 'every summary is itself audited')
  })

  it('POST /v1/audit/verify: ok with each chain\'s count and last hash; then names the instance and record someone altered', async () => {
    const ok = await call(kv, 'POST', '/v1/audit/verify', tokens.auditor)
    assert.equal(ok.status, 200, ok.text)
    const stored = await kv.audit()
    assert.equal(ok.json.ok, true)
    assert.ok(ok.json.count >= stored.length - 1 && ok.json.count <= stored.length)
    const mine = ok.json.chains.find((c: { instance: string }) => c.instance === kv.auditWriter.instance)
    assert.match(mine.last_hash, /^[0-9a-f]{64}$/)
    assert.equal(ok.json.chains.length, 2, 'this instance\'s chain and the other one\'s')
    assert.equal((await call(kv, 'POST', '/v1/audit/verify', tokens.operator)).status, 403)

    const raw = new DatabaseSync(auditPathFor(kv.runtime.config.databasePath))
    raw.exec('DROP TRIGGER audit_no_update')
    raw.exec(`UPDATE audit SET line = replace(line, '"decision":"deny"', '"decision":"allow"') WHERE seq = (SELECT min(seq) FROM audit WHERE decision = 'deny')`)
    const altered = Number(raw.prepare(`SELECT chain_seq FROM audit WHERE seq = (SELECT min(seq) FROM audit WHERE decision = 'deny')`).get()?.chain_seq)
    raw.close()
    const broken = await call(kv, 'POST', '/v1/audit/verify', tokens.admin)
    assert.deepEqual([broken.status, broken.json.ok, broken.json.instance, broken.json.seq, broken.json.problem], [200, false, kv.auditWriter.instance, altered, 'hash_mismatch'])
  })
})
