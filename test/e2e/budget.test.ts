import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import { parseGrant } from '../../src/policy/grant.ts'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const HOUR = 3_600_000

describe('budgets and rate limits: counted in the store, refused before the upstream, audited', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const client = new Agent({ connections: 128 })

  before(async () => {
    upstream = await startUpstream({
      handler: (_req, res, received) => {
        const body = received.url.startsWith('/big') ? 'x'.repeat(80) : 'ok'
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
        res.end(body)
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
budgets:
  ten-per-session: { connector: api, rule: counted, requests: 10 }
  agent-rate: { per: agent, connector: api, rule: rated, window: 1h, requests: 3 }
  download: { connector: api, rule: big, bytes_down: 100 }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-key, inject: bearer }
    rules:
      - { id: counted, methods: [GET], path: /counted, severity: read }
      - { id: rated, methods: [GET], path: /rated, severity: read }
      - { id: big, methods: [GET], path: /big, severity: read }
      - { id: free, methods: [GET], path: /free, severity: read }
`, { admin: {} })
    await kv.setSecret('api-key', 'real-api-key-0123456789')
  })
  after(async () => {
    await client.close()
    await kv.close()
    await upstream.close()
  })

  const get = async (path: string, key: string) => {
    const res = await request(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` }, dispatcher: client })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }
  const reached = (path: string) => upstream.received.filter((r) => r.url === path).length

  it('lets exactly 10 of 100 concurrent requests through a budget of 10', async () => {
    const { key, session } = await kv.mintKey(['api:read'])
    const answers = await Promise.all(Array.from({ length: 100 }, () => get('/api/counted', key)))
    assert.equal(answers.filter((a) => a.status === 200).length, 10)
    const refused = answers.filter((a) => a.status === 429)
    assert.equal(refused.length, 90)
    for (const a of refused) {
      assert.equal(a.headers['x-keyvalet-error'], 'budget_exhausted')
      assert.equal(a.headers['retry-after'], undefined, 'a budget over the session\'s life does not come back')
      assert.match(JSON.parse(a.body).error.message, /used up the requests of its budget ten-per-session/)
    }
    assert.equal(reached('/counted'), 10, 'the upstream received exactly the 10 allowed')
    const records = (await kv.audit()).filter((r) => r.session === session)
    assert.equal(records.length, 100, 'one record per request')
    assert.equal(records.filter((r) => r.decision === 'allow' && r.rule === 'counted').length, 10)
    const denied = records.filter((r) => r.decision === 'deny')
    assert.equal(denied.length, 90)
    for (const r of denied) {
      assert.deepEqual([r.error, r.reason, r.status, r.rule], ['budget_exhausted', 'budget_exhausted', 429, 'counted'])
      assert.deepEqual(r.detail, { budget: 'ten-per-session', metric: 'requests', limit: 10 })
    }
    // Another session has a budget of its own; a rule no budget names is not counted.
    const other = await kv.mintKey(['api:read'])
    assert.equal((await get('/api/counted', other.key)).status, 200)
    assert.equal((await get('/api/free', key)).status, 200)
  })

  it('rate-limits per agent across sessions, with Retry-After until the window ends, and lets requests through in the next window', async () => {
    const first = await kv.mintKey(['api:read'], { agent: 'rate-agent' })
    const second = await kv.mintKey(['api:read'], { agent: 'rate-agent' })
    const bystander = await kv.mintKey(['api:read'], { agent: 'another-agent' })
    const before = reached('/rated')
    assert.deepEqual([(await get('/api/rated', first.key)).status, (await get('/api/rated', second.key)).status, (await get('/api/rated', first.key)).status], [200, 200, 200])
    const over = await get('/api/rated', second.key)
    assert.equal(over.status, 429)
    assert.equal(over.headers['x-keyvalet-error'], 'rate_limited')
    const windowEnd = kv.now - (kv.now % HOUR) + HOUR
    assert.equal(Number(over.headers['retry-after']), Math.ceil((windowEnd - kv.now) / 1000))
    assert.equal((await get('/api/rated', bystander.key)).status, 200, 'another agent has its own counter')
    assert.equal(reached('/rated') - before, 4)
    const record = (await kv.audit()).at(-2)
    assert.deepEqual([record?.decision, record?.error, record?.session], ['deny', 'rate_limited', second.session])
    kv.now = windowEnd
    assert.equal((await get('/api/rated', first.key)).status, 200, 'the next window starts from 0')
  })

  it('charges bytes relayed when the exchange ends, and refuses once the total reached the limit', async () => {
    const { key, session } = await kv.mintKey(['api:read'])
    assert.equal((await get('/api/big', key)).status, 200) // 80 of 100
    assert.equal((await get('/api/big', key)).status, 200) // under the limit when it was checked: 160
    const over = await get('/api/big', key)
    assert.equal(over.status, 429)
    assert.equal(over.headers['x-keyvalet-error'], 'budget_exhausted')
    const records = (await kv.audit()).filter((r) => r.session === session)
    assert.deepEqual(records.map((r) => [r.decision, r.bytes_out]), [['allow', 80], ['allow', 80], ['deny', 0]])
  })

  it('holds a session to the request budget it was created with, and shows what is used and left', async () => {
    const { session, key } = await kv.runtime.sessions.create({ agent: 'a', user: 'u', workspace: 'w', grants: [parseGrant('api:read')], ttlMs: HOUR, budget: 2 })
    assert.deepEqual([(await get('/api/free', key)).status, (await get('/api/counted', key)).status], [200, 200])
    const over = await get('/api/free', key)
    assert.equal(over.status, 429)
    assert.equal(over.headers['x-keyvalet-error'], 'budget_exhausted')
    assert.match(JSON.parse(over.body).error.message, /budget session/)
    const { token } = await kv.adminToken('operator')
    const res = await request(`${kv.adminUrl}/v1/sessions/${session.id}`, { headers: { authorization: `Bearer ${token}` } })
    const shown = await res.body.json() as { budget: number; budgets: { budget: string; metric: string; used: number; left: number; limit: number }[] }
    assert.equal(res.statusCode, 200)
    assert.equal(shown.budget, 2)
    const use = (name: string, metric: string) => shown.budgets.find((b) => b.budget === name && b.metric === metric)
    assert.deepEqual(use('session', 'requests'), { budget: 'session', metric: 'requests', per: 'this session', connector: null, rule: null, used: 2, limit: 2, left: 0, resets_at: null })
    assert.deepEqual([use('ten-per-session', 'requests')?.used, use('ten-per-session', 'requests')?.left], [1, 9])

    // Every live session's use in one call (the console's budgets page): the same as one session's own answer.
    const revoked = await kv.runtime.sessions.create({ agent: 'a', user: 'u', workspace: 'w', grants: [parseGrant('api:read')], ttlMs: HOUR, budget: 5 })
    await kv.runtime.sessions.revoke(revoked.session.id)
    const listed = await request(`${kv.adminUrl}/v1/sessions?agent=a&budgets=true&limit=500`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(listed.statusCode, 200)
    const page = await listed.body.json() as { sessions: { id: string; state: string; budgets?: unknown[] }[] }
    assert.deepEqual(page.sessions.find((s) => s.id === session.id)?.budgets, shown.budgets)
    assert.deepEqual(Object.keys(page.sessions.find((s) => s.id === revoked.session.id) ?? {}).includes('budgets'), false, 'a revoked session spends nothing more')
    const plain = await (await request(`${kv.adminUrl}/v1/sessions?agent=a`, { headers: { authorization: `Bearer ${token}` } })).body.json() as { sessions: object[] }
    assert.ok(plain.sessions.every((s) => !('budgets' in s)), 'without budgets=true, no counter is read')
  })

  it('far from the limit, spends from a leased block; the admin API shows what was forwarded, the store also what is leased and unspent', async () => {
    const { session, key } = await kv.runtime.sessions.create({ agent: 'lessee', user: 'u', workspace: 'w', grants: [parseGrant('api:read')], ttlMs: HOUR, budget: 1000 })
    for (let i = 0; i < 3; i++) assert.equal((await get('/api/free', key)).status, 200)
    const counter = `session:${session.id}:requests`
    assert.equal(await kv.runtime.store.counters.used(counter, kv.now), 64, 'one block of 64 leased (at most 1/8 of the 1000 left)')
    const { token } = await kv.adminToken('operator')
    const shown = await (await request(`${kv.adminUrl}/v1/sessions/${session.id}`, { headers: { authorization: `Bearer ${token}` } })).body.json() as { budgets: { budget: string; used: number; left: number }[] }
    assert.deepEqual(shown.budgets.map((b) => [b.budget, b.used, b.left])[0], ['session', 3, 997], 'without the 61 units this instance holds')
  })

  it('session create --budget and session show on the command line: the budget given, what is used and left', async () => {
    kv.now = Date.now() // the CLI reads the windows of the real clock
    const env = { KEYVALET_MASTER_KEY: kv.masterKey }
    const create = (...extra: string[]) => cli(['session', 'create', '--config', kv.configFile, '--agent', 'cli-agent', '--user', 'u', '--workspace', 'w', '--grant', 'api:read', ...extra], { env })
    const refused = await create('--budget', '0')
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /--budget must be a whole number of requests, at least 1/)
    const created = await create('--budget', '5', '--json')
    assert.equal(created.code, 0, created.stderr)
    const { id, key, budget } = JSON.parse(created.stdout) as { id: string; key: string; budget: number }
    assert.equal(budget, 5)
    assert.equal((await get('/api/rated', key)).status, 200)
    const shown = await cli(['session', 'show', id, '--config', kv.configFile], { env })
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /budget session \(per this session\)\trequests\tused 1 of 5, 4 left\n/)
    assert.match(shown.stdout, /budget agent-rate \(per agent on api\/rated\)\trequests\tused 1 of 3, 2 left, resets \d{4}-/)
    assert.match(shown.stdout, /budget download \(per session on api\/big\)\tbytes_down\tused 0 of 100, 100 left/)
    const json = JSON.parse((await cli(['session', 'show', id, '--config', kv.configFile, '--json'], { env })).stdout) as { budgets: { budget: string; metric: string; used: number }[] }
    assert.equal(json.budgets.find((b) => b.budget === 'session')?.used, 1)
    const missing = await cli(['session', 'show', 'ses_0000000000000000', '--config', kv.configFile], { env })
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /no session ses_0000000000000000/)
  })
})
