import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { receivedDigest } from '../helpers/approvals.ts'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_realSecretValue0123456789abcdefXYZ'

describe('approvals: a request parked for a person, decided over the admin API, forwarded byte for byte', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let operator: { token: string; id: string }
  const client = new Agent({ connections: 64 })

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
limits: { approval_body_bytes: 2000, approvals_per_session: 2 }
budgets:
  searches: { connector: github, rule: search, requests: 2, approval: { timeout: 60s } }
connectors:
  github:
    upstream: ${upstream.url}/api
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    approval: { severity: admin, timeout: 90s }
    rules:
      - id: create-issue
        methods: [POST]
        path: /repos/:owner/:repo/issues
        severity: write
        approval: { timeout: 60s, summary: "Open issue {title} (labels {labels})" }
      - { id: comment, methods: [POST], path: /repos/:owner/:repo/comments, severity: write, approval: {} }
      - { id: read, methods: [GET], path: /repos/**, severity: read }
      - { id: search, methods: [GET], path: /search, severity: read }
      - { id: delete-repo, methods: [DELETE], path: /repos/:owner/:repo, severity: admin }
`, { admin: {} })
    await kv.setSecret('github-token', SECRET)
    operator = await kv.adminToken('operator', { name: 'alice-approver' })
  })
  after(async () => {
    await client.close()
    await kv.close()
    await upstream.close()
  })

  const send = (key: string, method: string, path: string, body?: unknown, signal?: AbortSignal) =>
    request(`${kv.url}/github${path}`, {
      method: method as 'POST', dispatcher: client, signal,
      headers: { authorization: `Bearer ${key}`, 'x-request-note': 'from-agent', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    }).then(async (res) => ({ status: res.statusCode, headers: res.headers, text: await res.body.text() }))
  const admin = async (method: string, path: string, body?: unknown, token = operator.token) => {
    const res = await fetch(`${kv.adminUrl}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: res.status, json: (await res.json()) as any }
  }
  /** The pending approval of this session, once it is parked. */
  const parked = (session: string) => eventually(async () => {
    const { json } = await admin('GET', '/v1/approvals?wait=5')
    return (json.approvals as any[]).find((a) => a.session === session)
  }, 'the approval to be pending')
  const recordOf = async (session: string): Promise<AuditRecord> => eventually(async () => (await kv.audit()).find((r) => r.session === session && r.mode === 'gateway'), 'the request record')
  const reached = (path: string) => upstream.received.filter((r) => r.url === `/api${path}`)

  it('approved: the upstream receives exactly the parked bytes, after the yes; the digest agrees three ways', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const body = { title: 'Crash on start', labels: ['bug', 'p1'], token: 'not-a-secret-but-named-like-one' }
    const answer = send(key, 'POST', '/repos/acme/app/issues?draft=1', body)
    const pending = await parked(session)
    assert.equal(reached('/repos/acme/app/issues?draft=1').length, 0, 'nothing reaches the upstream before a yes')
    assert.deepEqual(
      [pending.state, pending.agent, pending.user, pending.workspace, pending.task, pending.connector, pending.rule, pending.method, pending.path],
      ['pending', 'test-agent', 'alice', 'acme', 'task-1', 'github', 'create-issue', 'POST', '/api/repos/acme/app/issues?draft=1'],
    )
    assert.equal(pending.summary, 'Open issue Crash on start (labels ["bug","p1"])')
    assert.match(pending.digest, /^sha256:[0-9a-f]{64}$/)
    assert.ok(!JSON.stringify(pending).includes(SECRET) && !JSON.stringify(pending).includes(key), 'never the credential, never the task key')

    const decided = await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal(decided.status, 200)
    assert.deepEqual([decided.json.state, decided.json.approver], ['approved', { id: operator.id, name: 'alice-approver' }])

    const res = await answer
    assert.equal(res.status, 200)
    const [got] = reached('/repos/acme/app/issues?draft=1')
    assert.ok(got !== undefined)
    assert.equal(got.headers.authorization, `Bearer ${SECRET}`)
    assert.deepEqual(JSON.parse(got.body.toString()), body)
    assert.equal(receivedDigest(upstream.url, got, ['authorization']), pending.digest, 'the upstream received exactly what was approved')

    const record = await recordOf(session)
    assert.deepEqual([record.decision, record.status, record.rule], ['allow', 200, 'create-issue'])
    assert.equal(record.approval?.id, pending.id)
    assert.equal(record.approval?.decision, 'approved')
    assert.deepEqual(record.approval?.approver, { id: operator.id, name: 'alice-approver' })
    assert.equal(record.approval?.digest, pending.digest)
    assert.equal(typeof record.approval?.wait_ms, 'number')
    const call = (await kv.audit()).find((r) => r.mode === 'admin' && r.action === 'approval.approve' && r.target?.approval === pending.id)
    assert.ok(call !== undefined, 'the admin call has its own record')
    assert.deepEqual(call.actor, { id: operator.id, name: 'alice-approver' })
    assert.equal(call.target?.decision, 'approved')
    assert.equal(call.target?.digest, pending.digest)
    assert.deepEqual(call.target?.requester, { session, agent: 'test-agent', user: 'alice', workspace: 'acme', task: 'task-1' })
  })

  it('denied: 403 approval_denied with the reason (control characters removed), nothing upstream, audited once', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const answer = send(key, 'POST', '/repos/acme/app/comments', { text: 'hi' })
    const pending = await parked(session)
    assert.equal(pending.summary, '{"text":"hi"}', 'no template: the body, bounded')
    const decided = await admin('POST', `/v1/approvals/${pending.id}/deny`, { reason: 'Not on\u001b[31m this repo\nplease' })
    assert.equal(decided.status, 200)
    const res = await answer
    assert.equal(res.status, 403)
    assert.equal(res.headers['x-keyvalet-error'], 'approval_denied')
    const error = JSON.parse(res.text).error
    assert.equal(error.code, 'approval_denied')
    assert.match(error.message, /A person refused this request: Not on \[31m this repo please \(approval apr_[0-9a-f]{16}\)/)
    assert.equal(reached('/repos/acme/app/comments').length, 0)
    const records = (await kv.audit()).filter((r) => r.session === session)
    assert.equal(records.length, 1)
    assert.deepEqual([records[0]?.decision, records[0]?.error, records[0]?.status], ['deny', 'approval_denied', 403])
    assert.equal(records[0]?.approval?.decision, 'denied')
    assert.equal(records[0]?.approval?.reason, 'Not on [31m this repo please')
    // A second decision is refused, and the first stands.
    const again = await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal(again.status, 409)
    assert.equal(again.json.error.code, 'admin_approval_closed')
  })

  it('timed out (the default 120s): 403 approval_timeout; a decision after the deadline is refused to the approver', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const answer = send(key, 'POST', '/repos/acme/app/comments', { text: 'late' })
    const pending = await parked(session)
    kv.now += 120_000
    const res = await answer
    assert.equal(res.status, 403)
    assert.equal(res.headers['x-keyvalet-error'], 'approval_timeout')
    assert.match(JSON.parse(res.text).error.message, /No one approved this request within 120 s/)
    assert.equal(reached('/repos/acme/app/comments').filter((r) => r.body.toString().includes('late')).length, 0)
    const late = await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.deepEqual([late.status, late.json.error.code], [409, 'admin_approval_closed'])
    assert.match(late.json.error.message, /it was expired/)
    const record = await recordOf(session)
    assert.deepEqual([record.error, record.approval?.decision, record.approval?.approver], ['approval_timeout', 'expired', null])
  })

  it('client gone: the approval is cancelled, nothing is sent, the record says client_closed', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const abort = new AbortController()
    const answer = send(key, 'POST', '/repos/acme/app/comments', { text: 'gone' }, abort.signal).catch((err: unknown) => err)
    const pending = await parked(session)
    abort.abort()
    await answer
    await eventually(async () => ((await admin('GET', `/v1/approvals/${pending.id}`)).json.state === 'cancelled' ? true : undefined), 'the approval to be cancelled')
    const late = await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal(late.status, 409)
    const record = await recordOf(session)
    assert.deepEqual([record.error, record.approval?.decision], ['client_closed', 'cancelled'])
    assert.equal(reached('/repos/acme/app/comments').filter((r) => r.body.toString().includes('gone')).length, 0)
  })

  it('approve for N minutes: an identical request of the session passes without asking; a different one asks', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const first = send(key, 'POST', '/repos/acme/app/comments', { text: 'same' })
    const pending = await parked(session)
    await admin('POST', `/v1/approvals/${pending.id}/approve`, { remember_minutes: 10 })
    assert.equal((await first).status, 200)
    const second = await send(key, 'POST', '/repos/acme/app/comments', { text: 'same' })
    assert.equal(second.status, 200, 'identical: no one is asked')
    const records = (await kv.audit()).filter((r) => r.session === session && r.mode === 'gateway')
    assert.deepEqual(records.map((r) => [r.approval?.id, r.approval?.remembered]), [[pending.id, false], [pending.id, true]])
    const different = send(key, 'POST', '/repos/acme/app/comments', { text: 'other' })
    const asked = await parked(session)
    assert.notEqual(asked.id, pending.id)
    assert.notEqual(asked.digest, pending.digest)
    await admin('POST', `/v1/approvals/${asked.id}/deny`, { reason: 'no' })
    assert.equal((await different).status, 403)
    // Another session of the same task is asked again.
    const other = await kv.mintKey(['github:write'])
    const third = send(other.key, 'POST', '/repos/acme/app/comments', { text: 'same' })
    const askedAgain = await parked(other.session)
    await admin('POST', `/v1/approvals/${askedAgain.id}/deny`, { reason: 'no' })
    assert.equal((await third).status, 403)
    kv.now += 11 * 60_000
  })

  it('by severity: an admin request without a body is parked by the connector block; a read is not', async () => {
    const { key, session } = await kv.mintKey(['github:admin'])
    assert.equal((await send(key, 'GET', '/repos/acme/app')).status, 200)
    const answer = send(key, 'DELETE', '/repos/acme/app')
    const pending = await parked(session)
    assert.deepEqual([pending.rule, pending.method, pending.summary], ['delete-repo', 'DELETE', '(no body)'])
    await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal((await answer).status, 200)
    const [got] = reached('/repos/acme/app').filter((r) => r.method === 'DELETE')
    assert.ok(got !== undefined)
    assert.equal(receivedDigest(upstream.url, got, ['authorization']), pending.digest)
  })

  it('a soft budget: over its limit a request waits for a yes instead of a 429; approved, it goes', async () => {
    const { key, session } = await kv.mintKey(['github:read'])
    assert.equal((await send(key, 'GET', '/search?q=1')).status, 200)
    assert.equal((await send(key, 'GET', '/search?q=2')).status, 200)
    const third = send(key, 'GET', '/search?q=3')
    const pending = await parked(session)
    assert.deepEqual([pending.rule, pending.path], ['budget:searches', '/api/search?q=3'])
    assert.equal(reached('/search?q=3').length, 0)
    await admin('POST', `/v1/approvals/${pending.id}/approve`, {})
    assert.equal((await third).status, 200)
    assert.equal(reached('/search?q=3').length, 1)
    const fourth = send(key, 'GET', '/search?q=4')
    const again = await parked(session)
    await admin('POST', `/v1/approvals/${again.id}/deny`, { reason: 'enough searching' })
    const refused = await fourth
    assert.deepEqual([refused.status, refused.headers['x-keyvalet-error']], [403, 'approval_denied'])
    const records = (await kv.audit()).filter((r) => r.session === session)
    assert.deepEqual(records.map((r) => [r.status, r.approval?.decision ?? null]), [[200, null], [200, null], [200, 'approved'], [403, 'denied']])
  })

  it('a body over limits.approval_body_bytes is refused 413 approval_body_too_large before anyone is asked', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const res = await send(key, 'POST', '/repos/acme/app/comments', { text: 'x'.repeat(3000) })
    assert.deepEqual([res.status, res.headers['x-keyvalet-error']], [413, 'approval_body_too_large'])
    assert.equal((await admin('GET', '/v1/approvals')).json.approvals.filter((a: any) => a.session === session).length, 0)
    const record = await recordOf(session)
    assert.equal(record.error, 'approval_body_too_large')
  })

  it('by grant: a session whose grant says +approval parks what the grant allows; approved over the admin API, it goes', async () => {
    const minted = await admin('POST', '/v1/sessions', { agent: 'grant-agent', user: 'bob', workspace: 'acme', grant: ['github:read+approval=45s'] })
    assert.equal(minted.status, 201)
    assert.deepEqual(minted.json.session.grants, ['github:read+approval=45s'], 'the grant reads back as it was written')
    const { key, session: { id: session } } = minted.json
    assert.deepEqual((await admin('GET', `/v1/sessions/${session}`)).json.grants, ['github:read+approval=45s'])

    const answer = send(key, 'GET', '/repos/acme/granted')
    const pending = await parked(session)
    assert.deepEqual([pending.rule, pending.method, pending.path, pending.agent], ['read', 'GET', '/api/repos/acme/granted', 'grant-agent'], 'a rule that needs no approval of its own')
    assert.equal(Date.parse(pending.expires_at) - Date.parse(pending.created_at), 45_000, "the grant's wait")
    assert.equal(reached('/repos/acme/granted').length, 0, 'nothing reaches the upstream before a yes')
    assert.equal((await admin('POST', `/v1/approvals/${pending.id}/approve`, {})).status, 200)

    const res = await answer
    assert.equal(res.status, 200)
    assert.equal(JSON.parse(res.text).url, '/api/repos/acme/granted', "the sandbox has the upstream's answer")
    const [got] = reached('/repos/acme/granted')
    assert.equal(got?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(receivedDigest(upstream.url, got!, ['authorization']), pending.digest)
    const record = await recordOf(session)
    assert.deepEqual([record.decision, record.status, record.rule, record.approval?.decision, record.approval?.id], ['allow', 200, 'read', 'approved', pending.id])
    assert.deepEqual(record.decided_on?.grants, ['github:read+approval=45s'])
  })

  it('by grant: grants add up, so one that needs no approval lets the request through at once', async () => {
    const { key, session } = await kv.mintKey(['github:write+approval', 'github:read'])
    const read = await send(key, 'GET', '/repos/acme/both')
    assert.equal(read.status, 200, 'github:read covers the read rule without approval')
    assert.equal(reached('/repos/acme/both').length, 1)
    const records = (await kv.audit()).filter((r) => r.session === session)
    assert.deepEqual(records.map((r) => [r.decision, r.rule, r.approval]), [['allow', 'read', undefined]])
  })

  it('a session with limits.approvals_per_session requests waiting has the next refused 429 approval_limit_reached at once, nobody asked', async () => {
    const { key, session } = await kv.mintKey(['github:write'])
    const reachedBefore = reached('/repos/acme/app/comments').length
    const waiting = [send(key, 'POST', '/repos/acme/app/comments', { text: 'one' }), send(key, 'POST', '/repos/acme/app/comments', { text: 'two' })]
    const both = await eventually(async () => {
      const { json } = await admin('GET', '/v1/approvals?wait=5')
      const mine = (json.approvals as any[]).filter((a) => a.session === session)
      return mine.length === 2 ? mine : undefined
    }, 'two approvals pending')
    const third = await send(key, 'POST', '/repos/acme/app/comments', { text: 'three' })
    assert.equal(third.status, 429)
    assert.equal(third.headers['x-keyvalet-error'], 'approval_limit_reached')
    assert.match(JSON.parse(third.text).error.message, /already has 2 requests waiting for approval/)
    const { json } = await admin('GET', '/v1/approvals')
    assert.equal((json.approvals as any[]).filter((a) => a.session === session).length, 2, 'nobody was asked about the third')
    const other = await kv.mintKey(['github:write'])
    const elsewhere = send(other.key, 'POST', '/repos/acme/app/comments', { text: 'another task' })
    const otherPending = await parked(other.session)
    for (const a of [...both, otherPending]) assert.equal((await admin('POST', `/v1/approvals/${a.id}/deny`, { reason: 'no' })).status, 200)
    assert.deepEqual((await Promise.all([...waiting, elsewhere])).map((r) => r.status), [403, 403, 403])
    assert.equal(reached('/repos/acme/app/comments').length, reachedBefore)
    const refused = await eventually(async () => (await kv.audit()).find((r) => r.session === session && r.error === 'approval_limit_reached'), 'the refusal record')
    assert.deepEqual([refused.decision, refused.status, refused.rule, refused.detail], ['deny', 429, 'comment', { limit: 2 }])
  })

  it('roles: an approver lists and decides approvals, and may do nothing else', async () => {
    const approver = await kv.adminToken('approver', { name: 'erin-approver' })
    const { key, session } = await kv.mintKey(['github:write'])
    const answer = send(key, 'POST', '/repos/acme/app/comments', { text: 'by an approver' })
    const pending = await eventually(async () => {
      const { json } = await admin('GET', '/v1/approvals?wait=5', undefined, approver.token)
      return (json.approvals as any[]).find((a) => a.session === session)
    }, 'the approval, listed to the approver')
    const decided = await admin('POST', `/v1/approvals/${pending.id}/approve`, {}, approver.token)
    assert.deepEqual([decided.status, decided.json.approver], [200, { id: approver.id, name: 'erin-approver' }])
    assert.equal((await answer).status, 200)
    assert.equal((await recordOf(session)).approval?.approver?.name, 'erin-approver')
    for (const [method, path, body] of [
      ['POST', '/v1/sessions', { agent: 'a', user: 'u', workspace: 'w', grant: ['github:read'] }],
      ['GET', '/v1/sessions', undefined],
      ['POST', `/v1/sessions/${session}/revoke`, {}],
      ['GET', '/v1/audit', undefined],
      ['GET', '/v1/config', undefined],
      ['GET', '/v1/secrets', undefined],
    ] as const) {
      const res = await admin(method, path, body, approver.token)
      assert.deepEqual([path, res.status, res.json.error?.code], [path, 403, 'admin_role_forbidden'])
    }
    assert.equal((await admin('GET', '/v1/whoami', undefined, approver.token)).json.role, 'approver')
  })

  it('roles: an auditor may not list or decide approvals', async () => {
    const auditor = await kv.adminToken('auditor')
    const res = await admin('GET', '/v1/approvals', undefined, auditor.token)
    assert.deepEqual([res.status, res.json.error.code], [403, 'admin_role_forbidden'])
  })
})
