import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { receivedDigest } from '../helpers/approvals.ts'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres, storeBlock } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_real-upstream-token-0123456789'

describe('approvals across two instances on one PostgreSQL store', () => {
  let server: TestPostgres
  let upstream: Upstream
  let parkedOn: TestKeyvalet
  let decidedOn: TestKeyvalet

  before(async () => {
    server = await startTestPostgres()
    upstream = await startUpstream()
    const db = await server.database()
    const store = storeBlock(server, db)
    const config = `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
${store.yaml}connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: post, methods: [POST], path: /items, severity: write, approval: { timeout: 60s } }
`
    const files = store.files
    const masterKey = randomBytes(32).toString('base64')
    parkedOn = await startKeyvalet(config, { files, masterKey, admin: {} })
    decidedOn = await startKeyvalet(config, { files, masterKey, admin: {} })
    await parkedOn.setSecret('up-token', SECRET)
  })
  after(async () => {
    await parkedOn?.close()
    await decidedOn?.close()
    await upstream?.close()
    await server?.stop()
  })

  const admin = async (kv: TestKeyvalet, token: string, method: string, path: string, body?: unknown) => {
    const res = await request(`${kv.adminUrl}${path}`, {
      method: method as 'GET', headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: res.statusCode, json: (await res.body.json()) as any }
  }

  it('a request parked on one instance is approved through the other: forwarded once, exactly as approved, audited on both sides', async (t) => {
    const { key, session } = await parkedOn.mintKey(['up:write'])
    const approver = await decidedOn.adminToken('operator', { name: 'bob-approver' })
    const body = JSON.stringify({ name: 'widget', count: 3 })
    const answer = request(`${parkedOn.url}/up/items`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body })
      .then(async (res) => ({ status: res.statusCode, text: await res.body.text() }))
    // The other instance sees it pending, from the store.
    const pending = await eventually(async () => {
      const { json } = await admin(decidedOn, approver.token, 'GET', '/v1/approvals?wait=5')
      return (json.approvals as any[]).find((a) => a.session === session)
    }, 'the approval, from the other instance')
    assert.equal(upstream.received.length, 0)
    const decidedAt = performance.now()
    const decided = await admin(decidedOn, approver.token, 'POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal(decided.status, 200)
    const res = await answer
    // Woken by the change feed's NOTIFY (src/approvals/signals.test.ts proves it without a poll); only a generous bound here.
    const wokeMs = performance.now() - decidedAt
    t.diagnostic(`answered ${wokeMs.toFixed(1)} ms after the decision was sent to the other instance`)
    assert.ok(wokeMs < 5000, `answered ${wokeMs} ms after the decision`)
    assert.equal(res.status, 200)
    assert.equal(upstream.received.length, 1, 'forwarded once')
    const [got] = upstream.received
    assert.ok(got !== undefined)
    assert.equal(got.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(receivedDigest(upstream.url, got, ['authorization']), pending.digest)

    const records = await parkedOn.audit()
    const requestRecord = records.find((r) => r.mode === 'gateway' && r.session === session)
    assert.equal(requestRecord?.approval?.decision, 'approved')
    assert.deepEqual(requestRecord?.approval?.approver, { id: approver.id, name: 'bob-approver' })
    assert.equal(requestRecord?.approval?.digest, pending.digest)
    const call = records.find((r) => r.mode === 'admin' && r.action === 'approval.approve')
    assert.equal(call?.target?.approval, pending.id)
    assert.equal(call?.target?.digest, pending.digest)
  })

  it('exactly one of two concurrent decisions through the two instances wins; the loser is told it is closed', async () => {
    const { key, session } = await parkedOn.mintKey(['up:write'])
    const onParked = await parkedOn.adminToken('operator', { name: 'carol' })
    const onOther = await decidedOn.adminToken('operator', { name: 'dave' })
    const answer = request(`${parkedOn.url}/up/items`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"n":2}' })
      .then(async (res) => ({ status: res.statusCode, text: await res.body.text() }))
    const pending = await eventually(async () => {
      const { json } = await admin(parkedOn, onParked.token, 'GET', '/v1/approvals?wait=5')
      return (json.approvals as any[]).find((a) => a.session === session)
    }, 'the approval')
    const [a, b] = await Promise.all([
      admin(parkedOn, onParked.token, 'POST', `/v1/approvals/${pending.id}/deny`, { reason: 'carol says no' }),
      admin(decidedOn, onOther.token, 'POST', `/v1/approvals/${pending.id}/approve`, {}),
    ])
    assert.deepEqual([a.status, b.status].sort(), [200, 409])
    const winner = a.status === 200 ? 'denied' : 'approved'
    const res = await answer
    assert.equal(res.status, winner === 'approved' ? 200 : 403)
    const record = (await parkedOn.audit()).find((r) => r.mode === 'gateway' && r.session === session)
    assert.equal(record?.approval?.decision, winner)
  })
})
