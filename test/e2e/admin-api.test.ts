import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_realSecretValue0123456789abcdefXYZ'

function config(upstream: Upstream): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  github:
    upstream: ${upstream.url}/api
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`
}

/** One call of the admin API with a real client (fetch), its JSON answer parsed. */
async function call(kv: TestKeyvalet, method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${kv.adminUrl}${path}`, {
    method,
    headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
    ...(opts.body === undefined ? {} : { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) }),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: (text === '' ? undefined : JSON.parse(text)) as any }
}

const adminRecords = async (kv: TestKeyvalet): Promise<AuditRecord[]> => (await kv.audit()).filter((r) => r.mode === 'admin')

describe('admin API: a session minted over HTTP works through the gateway until it is revoked', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: {} })
    await kv.setSecret('github-token', SECRET)
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('POST /v1/sessions → the key once, its id, expiry and env; the key works; revoke ends it; every call is one audit record', async () => {
    const { token, id: tokenId } = await kv.adminToken('operator', { name: 'orchestrator' })
    const created = await call(kv, 'POST', '/v1/sessions', { token, body: { agent: 'bot', user: 'alice', workspace: 'acme', task: 'T-1', grant: ['github:read'], ttl: '10m' } })
    assert.equal(created.status, 201, created.text)
    const { session, key, env } = created.json
    assert.match(key, /^kvt_/)
    assert.equal(session.state, 'active')
    assert.equal(session.expires_at, new Date(kv.now + 600_000).toISOString())
    assert.deepEqual(session.grants, ['github:read'])
    assert.ok(env.some((l: { name?: string; value?: string }) => l.name === 'KEYVALET_TASK_KEY' && l.value === key))
    assert.ok(env.some((l: { name?: string; value?: string }) => l.name === 'KEYVALET_GITHUB_URL' && l.value === `${kv.url}/github`))

    const allowed = await fetch(`${kv.url}/github/repos/acme/app/issues/1`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(allowed.status, 200)
    await allowed.text()
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)

    const revoked = await call(kv, 'POST', `/v1/sessions/${session.id}/revoke`, { token })
    assert.equal(revoked.status, 200, revoked.text)
    assert.equal(revoked.json.state, 'revoked')
    const refused = await fetch(`${kv.url}/github/repos/acme/app/issues/2`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(refused.status, 401)
    assert.equal((await refused.json() as { error: { code: string } }).error.code, 'task_key_revoked')
    assert.equal(upstream.received.length, 1, 'the revoked key reached nothing')

    const records = await adminRecords(kv)
    assert.deepEqual(records.map((r) => [r.action, r.status, r.decision, r.actor?.id, r.actor?.name]), [
      ['session.create', 201, 'allow', tokenId, 'orchestrator'],
      ['session.revoke', 200, 'allow', tokenId, 'orchestrator'],
    ])
    assert.deepEqual(records[0]?.target, { session: session.id, agent: 'bot', user: 'alice', workspace: 'acme', task: 'T-1' })
    assert.equal(records[0]?.path, '/v1/sessions')
    assert.ok(!JSON.stringify(await kv.audit()).includes(key), 'no record holds the task key')
    assert.ok(!JSON.stringify(await kv.audit()).includes(token), 'no record holds the admin token')
  })
})
