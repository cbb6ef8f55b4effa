import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { parseExposition, series } from '../helpers/metrics.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const REAL_KEY = 'real-repo-key-0123456789'

describe('report mode: the refusal is computed and audited as would_deny, and the request is forwarded', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  const metrics = new KeyvaletMetrics()

  before(async () => {
    upstream = await startUpstream()
    const local = 'allow_insecure: true\n    allow_addresses: [127.0.0.1/32]'
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  repo:
    upstream: ${upstream.url}
    ${local}
    credential: { secret: repo-key, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: "/repos/**", severity: read }
      - { id: delete-repo, methods: [DELETE], path: "/repos/*", severity: admin, mode: report }
      - { id: create-issue, methods: [POST], path: "/repos/*/issues", severity: write }
  trial:
    upstream: ${upstream.url}/trial
    ${local}
    mode: report
    credential: { secret: repo-key, inject: bearer }
    rules:
      - { id: list, methods: [GET], path: /items, severity: read, allow_other_query: false }
`, { metrics })
    await kv.setSecret('repo-key', REAL_KEY)
    key = (await kv.mintKey(['repo:read', 'trial:read'])).key
  })
  after(async () => {
    metrics.close()
    await kv.close()
    await upstream.close()
  })

  const send = async (method: string, path: string) => {
    const res = await request(`${kv.url}${path}`, { method, headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, error: res.headers['x-keyvalet-error'], body: await res.body.text() }
  }
  const wouldDenies = async (connector: string) => parseExposition(await metrics.expose()).get(series('keyvalet_requests_total', { mode: 'gateway', connector, decision: 'would_deny', error: 'none' })) ?? 0

  it('forwards a request a rule in report mode refuses, and records why it would have been refused', async () => {
    const seen = upstream.received.length
    const answer = await send('DELETE', '/repo/repos/o')
    assert.deepEqual([answer.status, answer.error], [200, undefined], 'the sandbox gets the upstream\'s answer')
    assert.equal(upstream.received.length, seen + 1)
    assert.deepEqual([upstream.received.at(-1)?.method, upstream.received.at(-1)?.url, upstream.received.at(-1)?.headers.authorization], ['DELETE', '/repos/o', `Bearer ${REAL_KEY}`])
    const r = (await kv.audit()).at(-1)
    assert.deepEqual([r?.decision, r?.reason, r?.rule, r?.status, r?.error], ['would_deny', 'severity_exceeds_grant', 'delete-repo', 200, null])
    assert.match(String((r?.detail as { would_deny?: string } | undefined)?.would_deny), /admin/)
    assert.equal(await wouldDenies('repo'), 1)
  })

  it('still enforces the rules of the same connector that are not in report mode', async () => {
    const seen = upstream.received.length
    const answer = await send('POST', '/repo/repos/o/issues')
    assert.deepEqual([answer.status, answer.error], [403, 'policy_denied'])
    assert.equal(upstream.received.length, seen)
    const r = (await kv.audit()).at(-1)
    assert.deepEqual([r?.decision, r?.reason, r?.rule], ['deny', 'severity_exceeds_grant', 'create-issue'])
    assert.equal(await wouldDenies('repo'), 1)
  })

  it('reports every refusal of a connector in report mode, with or without a rule, and allows what the policy allows as usual', async () => {
    const seen = upstream.received.length
    assert.equal((await send('GET', '/trial/items?secret-filter=1')).status, 200)
    assert.equal((await send('GET', '/trial/nowhere')).status, 200)
    assert.equal((await send('GET', '/trial/items')).status, 200)
    assert.deepEqual(upstream.received.slice(seen).map((r) => r.url), ['/trial/items?secret-filter=1', '/trial/nowhere', '/trial/items'])
    const records = (await kv.audit()).slice(-3)
    assert.deepEqual(records.map((r) => [r.decision, r.reason, r.rule]), [
      ['would_deny', 'query_not_allowed', 'list'],
      ['would_deny', 'no_rule_for_path', null],
      ['allow', 'rule_matched', 'list'],
    ])
    assert.equal(await wouldDenies('trial'), 2)
  })

  it('refuses a malformed request in report mode all the same', async () => {
    const res = await request(`${kv.url}/trial/items`, { method: 'GET', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"a":1}' })
    await res.body.text()
    assert.deepEqual([res.statusCode, res.headers['x-keyvalet-error']], [400, 'body_unexpected'])
  })
})
