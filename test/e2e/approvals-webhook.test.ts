import assert from 'node:assert/strict'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Received, type Upstream } from '../helpers/upstream.ts'

const HOOK_SECRET = 'whsec-0123456789abcdef0123456789abcdef'
const TOLERANCE_S = 300

/** What docs/approvals.md tells a receiver to do, written here from the docs: parse, check the time, compare the MAC in constant time. */
function verify(received: Received, secret: string, nowSeconds: number): boolean {
  const header = received.headers['keyvalet-signature']
  if (typeof header !== 'string') return false
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]))
  const t = Number(parts.get('t'))
  const v1 = parts.get('v1') ?? ''
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > TOLERANCE_S) return false
  const expected = createHmac('sha256', secret).update(`${t}.`).update(received.body).digest()
  const given = Buffer.from(v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

describe('approvals webhook: a signed POST per pending approval, retried, pointing at the admin API', () => {
  let upstream: Upstream
  let receiver: Upstream
  let kv: TestKeyvalet
  let answers: number[]

  before(async () => {
    answers = [500]
    upstream = await startUpstream()
    receiver = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(answers.shift() ?? 204)
        res.end()
      },
    })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
approvals:
  webhook: { url: "${receiver.url}/hooks/keyvalet", secret: approvals-hook, format: slack, admin_url: "https://keyvalet-admin.internal:8790" }
connectors:
  api:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-key, inject: bearer }
    rules:
      - { id: post, methods: [POST], path: /items, severity: write, approval: { summary: "Add {name}" } }
`, { admin: {} })
    await kv.setSecret('api-key', 'real-api-key-0123456789')
    await kv.setSecret('approvals-hook', HOOK_SECRET)
  })
  after(async () => {
    await kv.close()
    await upstream.close()
    await receiver.close()
  })

  it('delivers a card the receiver can verify, again after a 500, with links and actions at the admin API only', async () => {
    const { key, session } = await kv.mintKey(['api:write'])
    const operator = await kv.adminToken('operator')
    const answer = request(`${kv.url}/api/items`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"name":"bolt"}' })
      .then(async (res) => ({ status: res.statusCode, text: await res.body.text() }))
    const deliveries = await eventually(async () => (receiver.received.length >= 2 ? receiver.received : undefined), 'two deliveries (a 500, then a 2xx)')
    const now = Math.floor(Date.now() / 1000)
    for (const d of deliveries) {
      assert.equal(d.method, 'POST')
      assert.equal(d.url, '/hooks/keyvalet')
      assert.ok(verify(d, HOOK_SECRET, now), 'the signature verifies')
      assert.ok(!verify(d, 'another-secret', now), 'and not under another secret')
      assert.ok(!verify(d, HOOK_SECRET, now + TOLERANCE_S + 60), 'and is refused once stale (a replay later)')
    }
    assert.deepEqual(deliveries.map((d) => d.headers['keyvalet-delivery']?.toString().split('.')[1]), ['1', '2'])
    const card = JSON.parse(deliveries[1]!.body.toString()) as any
    assert.equal(card.type, 'approval.pending')
    assert.equal(card.approval.session, session)
    assert.equal(card.approval.summary, 'Add bolt')
    const id = card.approval.id as string
    assert.deepEqual(card.links, {
      approval: `https://keyvalet-admin.internal:8790/v1/approvals/${id}`,
      approve: `https://keyvalet-admin.internal:8790/v1/approvals/${id}/approve`,
      deny: `https://keyvalet-admin.internal:8790/v1/approvals/${id}/deny`,
    })
    assert.match(card.text, /asks to POST 127\.0\.0\.1:\d+\/items: Add bolt/)
    const actions = card.blocks.find((b: any) => b.type === 'actions')
    assert.deepEqual(actions.elements.map((e: any) => [e.action_id, e.value]), [['keyvalet_approve', id], ['keyvalet_deny', id]])
    const text = deliveries.map((d) => d.body.toString()).join('\n')
    assert.ok(!text.includes(kv.url) && !text.includes(key) && !text.includes('real-api-key'), 'nothing points at the sandbox side; no key, no credential')

    assert.deepEqual(deliveries.map((d) => d.headers['keyvalet-event']), ['approval.pending', 'approval.pending'])
    const decided = await fetch(`${kv.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(decided.status, 200)
    assert.equal((await answer).status, 200)

    // The decision is announced too, once, by the instance that held the request.
    const announced = await eventually(async () => receiver.received.find((d) => d.headers['keyvalet-event'] === 'approval.decided'), 'the decision delivery')
    assert.ok(verify(announced, HOOK_SECRET, Math.floor(Date.now() / 1000)), 'signed like the others')
    const decision = JSON.parse(announced.body.toString()) as any
    assert.deepEqual([decision.type, decision.approval.id, decision.approval.state, decision.approval.approver?.id], ['approval.decided', id, 'approved', operator.id])
    assert.deepEqual(decision.links, { approval: `https://keyvalet-admin.internal:8790/v1/approvals/${id}` })
    assert.match(decision.text, new RegExp(`^${id} approved by \\S+ \\(test-agent asked to POST 127\\.0\\.0\\.1:\\d+/items\\)$`))
    assert.ok(!decision.blocks.some((b: any) => b.type === 'actions'), 'nothing left to decide')
    assert.ok(!announced.body.toString().includes(key) && !announced.body.toString().includes('real-api-key'))
    assert.equal(receiver.received.filter((d) => d.headers['keyvalet-event'] === 'approval.decided').length, 1)
  })
})
