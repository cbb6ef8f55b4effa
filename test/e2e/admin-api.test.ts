import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, beforeEach, describe, it } from 'node:test'
import { MAX_ADMIN_BODY_BYTES } from '../../src/admin/server.ts'
import type { AdminRole } from '../../src/model/admin-token.ts'
import type { AuditRecord } from '../../src/audit/record.ts'
import { loadOrCreateCa } from '../../src/tls/ca-store.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_realSecretValue0123456789abcdefXYZ'
const REPO = fileURLToPath(new URL('../..', import.meta.url))
const EXAMPLE = join(REPO, 'examples', 'orchestrator.ts')
const execFileAsync = promisify(execFile)

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
  // A live stream (server-sent events) does not end: its head is the answer here.
  if (res.headers.get('content-type')?.startsWith('text/event-stream') === true) {
    await res.body?.cancel()
    return { status: res.status, headers: res.headers, text: '', json: undefined as any }
  }
  const text = await res.text()
  const json = text !== '' && res.headers.get('content-type')?.startsWith('application/json') === true ? JSON.parse(text) : undefined
  return { status: res.status, headers: res.headers, text, json: json as any }
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

/** What the issue says each role may do, for the routes of this file; routes added later are checked against their declared roles. */
const EXPECTED_ROLES: Record<string, readonly AdminRole[]> = {
  'session.create': ['admin', 'operator'], 'session.list': ['admin', 'operator'], 'session.get': ['admin', 'operator'],
  'session.revoke': ['admin', 'operator'], 'session.revoke_many': ['admin', 'operator'],
  'secret.list': ['admin'], 'secret.set': ['admin'], 'secret.delete': ['admin'],
  'admin_token.list': ['admin'], 'admin_token.create': ['admin'], 'admin_token.revoke': ['admin'],
  'openapi.get': ['admin', 'operator', 'auditor', 'approver'],
  'config.get': ['admin', 'operator', 'auditor'], 'config.reload': ['admin'], 'config.explain': ['admin', 'operator'],
  'audit.query': ['admin', 'auditor'], 'audit.stream': ['admin', 'auditor'], 'audit.verify': ['admin', 'auditor'],
  'ca.bundle': ['admin', 'operator', 'auditor', 'approver'],
  'approval.list': ['admin', 'operator', 'approver'], 'approval.get': ['admin', 'operator', 'approver'],
  'approval.approve': ['admin', 'operator', 'approver'], 'approval.deny': ['admin', 'operator', 'approver'],
}
const ROLES: readonly AdminRole[] = ['admin', 'operator', 'auditor', 'approver']

interface Operation { method: string; path: string; action: string; roles: AdminRole[]; public: boolean }
function operations(document: { paths: Record<string, Record<string, { 'x-keyvalet-action': string; 'x-keyvalet-roles': AdminRole[]; security?: unknown[] }>> }): Operation[] {
  return Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({
    method: method.toUpperCase(), path, action: op['x-keyvalet-action'], roles: op['x-keyvalet-roles'], public: Array.isArray(op.security) && op.security.length === 0,
  })))
}

describe('admin API: authentication, roles, input checks, audit', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const tokens = {} as Record<AdminRole, string>
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: { throttle: { free: 3, baseMs: 60_000, maxMs: 600_000 } } })
    await kv.setSecret('github-token', SECRET)
    for (const role of ROLES) tokens[role] = (await kv.adminToken(role)).token
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('GET /v1/openapi.json is an OpenAPI 3.1 document (checked by openapi-spec-validator) with every declared route', async () => {
    const doc = await call(kv, 'GET', '/v1/openapi.json', { token: tokens.auditor })
    assert.equal(doc.status, 200, doc.text)
    assert.equal(doc.json.openapi, '3.1.0')
    execFileSync('python3', ['-c', 'import json, sys; from openapi_spec_validator import validate; validate(json.load(sys.stdin))'], { input: doc.text, stdio: ['pipe', 'pipe', 'pipe'] })
    const { ROUTE_MODULES } = await import('../../src/admin/routes/index.ts')
    const declared = ROUTE_MODULES.flatMap((m) => m({} as never) as readonly { method: string; path: string; action: string }[]).map((r) => `${r.method} ${r.path} ${r.action}`)
    const documented = operations(doc.json).map((o) => `${o.method} ${o.path} ${o.action}`)
    assert.deepEqual(documented.filter((o) => !o.endsWith(' openapi.get')).sort(), [...declared].sort())
    for (const [action, roles] of Object.entries(EXPECTED_ROLES)) assert.deepEqual(operations(doc.json).find((o) => o.action === action)?.roles, roles, action)
  })

  it('every endpoint × every role: a role outside the route\'s roles is refused 403 admin_role_forbidden before anything else, and audited', async () => {
    // The health probes are public (no token, no record: test/e2e/health.test.ts); every other route is in the matrix.
    const ops = operations((await call(kv, 'GET', '/v1/openapi.json', { token: tokens.admin })).json).filter((op) => !op.public)
    assert.ok(ops.length >= 10)
    for (const op of ops) {
      for (const role of ROLES) {
        const before = (await adminRecords(kv)).length
        const path = op.path.replace('{id}', op.path.startsWith('/v1/admin-tokens') ? 'kat_0000000000000000' : 'ses_0000000000000000').replace('{name}', 'matrix-secret')
        const res = await call(kv, op.method, path, { token: tokens[role], ...(op.method === 'POST' || op.method === 'PUT' ? { body: {} } : {}) })
        const label = `${role} ${op.method} ${op.path}`
        if (op.roles.includes(role)) assert.notEqual(res.status, 403, `${label}: ${res.text}`)
        else {
          assert.equal(res.status, 403, label)
          assert.equal(res.json.error.code, 'admin_role_forbidden', label)
          assert.equal(res.headers.get('x-keyvalet-error'), 'admin_role_forbidden')
        }
        const records = (await adminRecords(kv)).slice(before)
        assert.equal(records.length, 1, `${label}: one record`)
        assert.equal(records[0]?.action, op.action, label)
        assert.equal(records[0]?.status, res.status, label)
        assert.equal(records[0]?.actor?.name, `test-${role}`, label)
      }
    }
  })

  it('no, malformed, unknown, revoked or expired tokens are 401 with their code, audited without an actor for an unknown one', async () => {
    const revoked = await kv.adminToken('admin', { name: 'gone' })
    await kv.runtime.store.adminTokens.revoke(revoked.id, kv.now)
    const expiring = await kv.adminToken('admin', { name: 'brief', ttlMs: 1000 })
    kv.now += 1000
    const cases: [Record<string, string>, string][] = [
      [{}, 'admin_token_missing'],
      [{ authorization: 'Basic YTpi' }, 'admin_token_invalid'],
      [{ authorization: `Bearer kva_${'A'.repeat(43)}` }, 'admin_token_invalid'],
      [{ authorization: `Bearer ${revoked.token}` }, 'admin_token_revoked'],
      [{ authorization: `Bearer ${expiring.token}` }, 'admin_token_expired'],
    ]
    for (const [headers, code] of cases) {
      const before = (await adminRecords(kv)).length
      const res = await call(kv, 'GET', '/v1/sessions', { headers })
      assert.equal(res.status, 401, code)
      assert.equal(res.json.error.code, code)
      const records = (await adminRecords(kv)).slice(before)
      assert.deepEqual(records.map((r) => [r.error, r.actor, r.decision]), [[code, null, 'deny']])
    }
    assert.equal((await adminRecords(kv)).at(-1)?.detail?.admin_token, expiring.id, 'the operator sees which token expired')
    assert.ok(!JSON.stringify(await kv.audit()).includes(revoked.token.slice(4)), 'no record holds a token')
    // Unknown paths answer 401 first: without a token nothing else is learnt.
    assert.equal((await call(kv, 'GET', '/v1/nothing-here')).status, 401)
    // Four bad tokens closed this address for a minute (the slow-down, tested below): wait it out.
    assert.equal((await call(kv, 'GET', '/v1/sessions', { token: tokens.admin })).status, 429)
    kv.now += 60_000
    assert.equal((await call(kv, 'GET', '/v1/sessions', { token: tokens.admin })).status, 200)
  })

  it('input: 400 naming the field (missing, wrong type, unknown), invalid JSON, 415 for non-JSON, 413 over the bound, 404 and 405', async () => {
    const token = tokens.operator
    const refused = async (res: Awaited<ReturnType<typeof call>>, status: number, code: string, message?: RegExp) => {
      assert.equal(res.status, status, res.text)
      assert.equal(res.json.error.code, code)
      if (message !== undefined) assert.match(res.json.error.message, message)
      assert.match(res.json.error.request_id, /^adm_/)
    }
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: { agent: 7, user: 'u', workspace: 'w', grant: ['github:read'] } }), 400, 'admin_request_invalid', /^body\.agent: must be string$/)
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: { agent: 'a', user: 'u', workspace: 'w', grant: ['github:read'], admin: true } }), 400, 'admin_request_invalid', /^body has an unknown field "admin"$/)
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: { user: 'u', workspace: 'w', grant: ['github:read'] } }), 400, 'admin_request_invalid', /^agent is required$/)
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: { agent: 'a', user: 'u', workspace: 'w', grant: ['nope:read'] } }), 400, 'admin_request_invalid', /no connector named nope/)
    await refused(await call(kv, 'POST', '/v1/sessions/revoke', { token, body: {} }), 400, 'admin_request_invalid', /^body: /)
    await refused(await call(kv, 'GET', '/v1/sessions?limit=0', { token }), 400, 'admin_request_invalid', /^query\.limit: must be >= 1$/)
    await refused(await call(kv, 'GET', '/v1/sessions?colour=red', { token }), 400, 'admin_request_invalid', /^query has an unknown field "colour"$/)
    await refused(await call(kv, 'GET', '/v1/sessions?cursor=xyz', { token }), 400, 'admin_request_invalid', /^query\.cursor/)
    await refused(await call(kv, 'GET', '/v1/sessions/not-an-id', { token }), 400, 'admin_request_invalid', /^params\.id: /)
    await refused(await call(kv, 'GET', '/v1/sessions/ses_0000000000000000', { token }), 404, 'admin_not_found')
    // A control character is no part of any name or filter (and PostgreSQL text cannot hold NUL).
    await refused(await call(kv, 'GET', '/v1/sessions?agent=a%00b', { token }), 400, 'admin_request_invalid', /^query\.agent holds a control character$/)
    await refused(await call(kv, 'GET', '/v1/sessions/ses_%0a', { token }), 400, 'admin_request_invalid', /^params\.id holds a control character$/)
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: '{"agent":' }), 400, 'admin_request_invalid', /^body is not valid JSON$/)
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: 'agent=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'admin_media_type')
    await refused(await call(kv, 'POST', '/v1/sessions', { token, body: JSON.stringify({ agent: 'x'.repeat(MAX_ADMIN_BODY_BYTES) }) }), 413, 'admin_body_too_large')
    await refused(await call(kv, 'GET', '/v1/nothing-here', { token }), 404, 'admin_route_unknown')
    const wrongMethod = await call(kv, 'DELETE', '/v1/sessions', { token })
    await refused(wrongMethod, 405, 'admin_method_refused')
    assert.equal(wrongMethod.headers.get('allow'), 'POST, GET')
    const last = (await adminRecords(kv)).at(-1)
    assert.deepEqual([last?.error, last?.status, last?.action], ['admin_method_refused', 405, null])
  })

  it('an oversized body that claims no length is cut at the bound: 413 on a raw connection', async () => {
    const { port } = new URL(kv.adminUrl as string)
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1')
      let text = ''
      socket.on('data', (c: Buffer) => { text += c.toString() })
      socket.on('close', () => resolve(text))
      socket.on('error', reject)
      socket.write(`POST /v1/sessions HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${tokens.operator}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`)
      const chunk = 'a'.repeat(64 * 1024)
      for (let i = 0; i < 5; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
    })
    assert.match(answer, /^HTTP\/1\.1 413 /)
    assert.match(answer, /"code":"admin_body_too_large"/)
  })

  it('a request target that is no URL (GET http://[) is answered 400 admin_request_invalid and audited once; the listener keeps serving', async () => {
    const { port } = new URL(kv.adminUrl as string)
    const before = (await adminRecords(kv)).length
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1')
      let text = ''
      socket.on('data', (c: Buffer) => { text += c.toString() })
      socket.on('close', () => resolve(text))
      socket.on('error', reject)
      socket.write(`GET http://[ HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${tokens.admin}\r\nconnection: close\r\n\r\n`)
    })
    assert.match(answer, /^HTTP\/1\.1 400 /)
    assert.match(answer, /"code":"admin_request_invalid"/)
    const records = (await adminRecords(kv)).slice(before)
    assert.deepEqual(records.map((r) => [r.status, r.error]), [[400, 'admin_request_invalid']])
    assert.equal((await call(kv, 'GET', '/v1/whoami', { token: tokens.admin })).json.role, 'admin')
  })

  it('sessions: list with filters and cursor pages, get, revoke in bulk by user', async () => {
    const token = tokens.admin
    const made: string[] = []
    for (const [agent, user] of [['a1', 'bob'], ['a1', 'carol'], ['a2', 'bob'], ['a1', 'bob']]) {
      kv.now += 1
      const res = await call(kv, 'POST', '/v1/sessions', { token, body: { agent, user, workspace: 'paging', grant: ['github:read'] } })
      made.push(res.json.session.id)
    }
    const seen: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 10; page++) {
      const res = await call(kv, 'GET', `/v1/sessions?workspace=paging&agent=a1&limit=2${cursor === null ? '' : `&cursor=${cursor}`}`, { token })
      assert.equal(res.status, 200, res.text)
      assert.ok(res.json.sessions.length <= 2)
      seen.push(...res.json.sessions.map((s: { id: string }) => s.id))
      cursor = res.json.next_cursor
      if (cursor === null) break
    }
    assert.deepEqual(seen, [made[0], made[1], made[3]])
    const got = await call(kv, 'GET', `/v1/sessions/${made[1]}`, { token })
    assert.deepEqual([got.json.id, got.json.user, got.json.state], [made[1], 'carol', 'active'])
    assert.ok(!('key' in got.json) && !got.text.includes('kvt_'), 'a session is never shown with its key')
    const bulk = await call(kv, 'POST', '/v1/sessions/revoke', { token, body: { workspace: 'paging', user: 'bob' } })
    assert.deepEqual(bulk.json.revoked, [made[0], made[2], made[3]])
    const states = await call(kv, 'GET', '/v1/sessions?workspace=paging', { token })
    assert.deepEqual(states.json.sessions.map((s: { state: string }) => s.state), ['revoked', 'active', 'revoked', 'revoked'])
    const record = (await adminRecords(kv)).findLast((r) => r.action === 'session.revoke_many' && r.status === 200)
    assert.deepEqual(record?.target, { filter: { workspace: 'paging', user: 'bob' }, revoked: bulk.json.revoked, count: 3 })
  })

  it("GET /v1/ca-bundle: keyvalet's interception CA, alone or first before the public CAs, each once; audited", async () => {
    const { ca } = await loadOrCreateCa(kv.runtime.vault)
    const alone = await call(kv, 'GET', '/v1/ca-bundle?base=none', { token: tokens.operator })
    assert.equal(alone.status, 200, alone.text)
    assert.equal(alone.headers.get('content-type'), 'application/x-pem-file')
    const blocks = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    assert.deepEqual(blocks(alone.text).map((b) => new X509Certificate(b).fingerprint256), [new X509Certificate(ca.certPem).fingerprint256])
    assert.ok(new X509Certificate(blocks(alone.text)[0] ?? '').ca, 'a CA certificate')
    const bundle = await call(kv, 'GET', '/v1/ca-bundle?base=node', { token: tokens.auditor })
    const certs = blocks(bundle.text).map((b) => new X509Certificate(b).fingerprint256)
    assert.equal(certs[0], new X509Certificate(ca.certPem).fingerprint256, "keyvalet's CA first")
    assert.ok(certs.length > 100, `the public CAs follow (${certs.length})`)
    assert.equal(new Set(certs).size, certs.length, 'each once')
    assert.ok(!bundle.text.includes('PRIVATE KEY'))
    const refused = await call(kv, 'GET', '/v1/ca-bundle?base=/etc/passwd', { token: tokens.operator })
    assert.equal(refused.status, 400, 'no file path from the API')
    const last = (await adminRecords(kv)).at(-1)
    assert.deepEqual([last?.action, last?.status], ['ca.bundle', 400])
  })

  it('secrets: set over the API is used by the gateway, list shows metadata only, no answer or record ever holds the value; reserved names refused', async () => {
    const token = tokens.admin
    const value = 'ghp_setOverTheAdminApi_0123456789abcdef'
    const set = await call(kv, 'PUT', '/v1/secrets/github-token', { token, body: { value } })
    assert.equal(set.status, 200, set.text)
    assert.deepEqual(Object.keys(set.json).sort(), ['created_at', 'key_id', 'name', 'updated_at'])
    const { key } = (await call(kv, 'POST', '/v1/sessions', { token, body: { agent: 'a', user: 'u', workspace: 'w', grant: ['github:read'] } })).json
    const through = await fetch(`${kv.url}/github/repos/acme/app/issues/9`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(through.status, 200)
    assert.ok(!(await through.text()).includes(value), 'the sandbox never sees it')
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${value}`)
    const list = await call(kv, 'GET', '/v1/secrets', { token })
    assert.deepEqual(list.json.secrets.map((s: { name: string }) => s.name), ['github-token'])
    assert.ok((await call(kv, 'GET', '/v1/secrets?all=true', { token })).json.secrets.some((s: { name: string }) => s.name.startsWith('keyvalet.')))
    assert.equal((await call(kv, 'PUT', '/v1/secrets/keyvalet.audit-key', { token, body: { value: 'x' } })).status, 400)
    assert.equal((await call(kv, 'PUT', '/v1/secrets/Bad%20Name', { token, body: { value: 'x' } })).status, 400)
    assert.equal((await call(kv, 'PUT', '/v1/secrets/big', { token, body: { value: 'x'.repeat(64 * 1024 + 1) } })).status, 400)
    assert.equal((await call(kv, 'PUT', '/v1/secrets/other', { token, body: { value: 'v1' } })).status, 200)
    assert.deepEqual((await call(kv, 'DELETE', '/v1/secrets/other', { token })).json, { deleted: 'other' })
    assert.equal((await call(kv, 'DELETE', '/v1/secrets/other', { token })).json.error.code, 'admin_not_found')
    const all = JSON.stringify(await kv.audit())
    assert.ok(!all.includes(value) && !all.includes('setOverTheAdminApi'), 'no audit record holds the value')
    assert.deepEqual((await adminRecords(kv)).filter((r) => r.action === 'secret.set' && r.status === 200).map((r) => r.target), [{ secret: 'github-token' }, { secret: 'other' }])
  })

  it('admin tokens over the API: an admin mints one (its value once), it works in its role, list shows no value, revoke ends it', async () => {
    const made = await call(kv, 'POST', '/v1/admin-tokens', { token: tokens.admin, body: { name: 'ci', role: 'auditor', ttl: '1d' } })
    assert.equal(made.status, 201, made.text)
    const { token, value } = made.json
    assert.match(value, /^kva_/)
    assert.deepEqual([token.name, token.role, token.state, token.expires_at], ['ci', 'auditor', 'active', new Date(kv.now + 86_400_000).toISOString()])
    assert.equal((await call(kv, 'GET', '/v1/openapi.json', { token: value })).status, 200)
    assert.equal((await call(kv, 'GET', '/v1/sessions', { token: value })).status, 403, 'an auditor mints no keys')
    const list = await call(kv, 'GET', '/v1/admin-tokens', { token: tokens.admin })
    assert.ok(list.json.tokens.some((t: { id: string }) => t.id === token.id))
    assert.ok(!list.text.includes(value.slice(4)), 'never a value')
    assert.equal((await call(kv, 'POST', `/v1/admin-tokens/${token.id}/revoke`, { token: tokens.admin })).json.state, 'revoked')
    assert.equal((await call(kv, 'GET', '/v1/openapi.json', { token: value })).json.error.code, 'admin_token_revoked')
    assert.equal((await call(kv, 'POST', '/v1/admin-tokens', { token: tokens.admin, body: { name: 'x', role: 'root' } })).status, 400)
    const record = (await adminRecords(kv)).find((r) => r.action === 'admin_token.create' && r.status === 201)
    assert.deepEqual(record?.target, { admin_token: token.id, name: 'ci', role: 'auditor' })
    assert.ok(!JSON.stringify(await kv.audit()).includes(value.slice(4)), 'no record holds the token')
  })

  it('repeated bad tokens from one address are slowed down: past the free tries even a good token waits, with Retry-After; the wait ends', async () => {
    const bad = { authorization: `Bearer kva_${'B'.repeat(43)}` }
    // Three free tries, and a fourth that closes the address.
    for (let i = 0; i < 4; i++) assert.equal((await call(kv, 'GET', '/v1/sessions', { headers: bad })).status, 401)
    for (const headers of [bad, { authorization: `Bearer ${tokens.admin}` }]) {
      const res = await call(kv, 'GET', '/v1/sessions', { headers })
      assert.equal(res.status, 429)
      assert.equal(res.json.error.code, 'admin_token_throttled')
      assert.equal(res.headers.get('retry-after'), '60')
    }
    assert.equal((await adminRecords(kv)).at(-1)?.error, 'admin_token_throttled')
    kv.now += 60_000
    assert.equal((await call(kv, 'GET', '/v1/sessions', { token: tokens.admin })).status, 200)
  })
})

describe('examples/orchestrator.ts: a task\'s whole life over the admin API', () => {
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

  it('mints, runs the sandbox command with the environment (its request succeeds), revokes: the key it kept then fails', async () => {
    const { token, id: tokenId } = await kv.adminToken('operator', { name: 'orchestrator' })
    const kept = join(kv.dir, 'kept-key')
    // The sandbox's command: a request as an unmodified tool makes it, and a copy of its key kept for later.
    const sandbox = `curl -sS -H "Authorization: Bearer $GITHUB_TOKEN" "$GITHUB_API_URL/repos/acme/app/issues/5" && printf %s "$KEYVALET_TASK_KEY" > ${kept}`
    // Asynchronously: keyvalet runs in this process and must answer while the example runs.
    const run = await execFileAsync(process.execPath, [EXAMPLE, '--agent', 'triage-bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'github:read', '--', 'sh', '-c', sandbox], {
      cwd: REPO, env: { PATH: process.env.PATH, KEYVALET_ADMIN_URL: kv.adminUrl, KEYVALET_ADMIN_TOKEN: token }, encoding: 'utf8', timeout: 30_000,
    })
    // The sandbox got the upstream's answer, with the real credential masked.
    const answer = JSON.parse(run.stdout) as { url: string; headers: Record<string, string> }
    assert.equal(answer.url, '/api/repos/acme/app/issues/5')
    assert.ok(!run.stdout.includes(SECRET))
    // The upstream got the real credential, once.
    assert.equal(upstream.received.length, 1)
    assert.equal(upstream.received[0]?.headers.authorization, `Bearer ${SECRET}`)
    const sessionId = /session (ses_[0-9a-f]+) for task/.exec(run.stderr)?.[1]
    assert.match(run.stderr, new RegExp(`session ${sessionId} revoked`))

    const key = readFileSync(kept, 'utf8')
    const after = await fetch(`${kv.url}/github/repos/acme/app/issues/6`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(after.status, 401)
    assert.equal((await after.json() as { error: { code: string } }).error.code, 'task_key_revoked')
    assert.equal(upstream.received.length, 1, 'nothing reached the upstream after revocation')

    const records = await kv.audit()
    assert.deepEqual(records.map((r) => [r.mode, r.action ?? r.path, r.session === null ? r.target?.session : r.session, r.decision, r.reason === 'task_key_revoked' ? r.reason : r.status]), [
      ['admin', 'openapi.get', undefined, 'allow', 200],
      ['admin', 'session.create', sessionId, 'allow', 201],
      ['gateway', '/api/repos/acme/app/issues/5', sessionId, 'allow', 200],
      ['admin', 'session.revoke', sessionId, 'allow', 200],
      ['gateway', null, sessionId, 'deny', 'task_key_revoked'],
    ])
    for (const r of records.filter((r) => r.mode === 'admin')) assert.deepEqual(r.actor, { id: tokenId, name: 'orchestrator' })
  })
})
