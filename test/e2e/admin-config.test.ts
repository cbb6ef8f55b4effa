import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { AdminRole } from '../../src/model/admin-token.ts'
import type { AuditRecord } from '../../src/audit/record.ts'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRETS = {
  'github-token': 'ghp_realSecretValue0123456789abcdefXYZ',
  'crm-client-secret': 'client-secret-value-9f8e7d6c5b4a',
  'proxy-credentials': 'proxyuser:proxy-password-1234567',
}

function config(upstream: Upstream, issues = '/repos/acme/app/issues/**'): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  github:
    upstream: ${upstream.url}/api
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    assertion: { ttl_s: 60 }
    rules:
      - { id: read-issues, methods: [GET], path: ${issues}, severity: read }
      - id: create-issue
        methods: [POST]
        path: /repos/acme/app/issues
        severity: write
        body: { type: object, required: [title], properties: { title: { type: string, maxLength: 20 } } }
  crm:
    upstream: https://crm.example.com
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "https://crm.example.com/token", client_id: svc, client_secret: crm-client-secret }
    upstream_proxy: { url: "http://proxy.corp.example:3128", secret: proxy-credentials }
    rules: [{ id: reports, methods: [GET], path: /reports/**, severity: read }]
`
}

async function call(kv: TestKeyvalet, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${kv.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, text, json: (text === '' ? undefined : JSON.parse(text)) as any, error: res.headers.get('x-keyvalet-error') }
}

describe('admin API: configuration, reload and explain', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const tokens = {} as Record<AdminRole, string>
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: {} })
    for (const [name, value] of Object.entries(SECRETS)) await kv.setSecret(name, value)
    for (const role of ['admin', 'operator', 'auditor'] as const) tokens[role] = (await kv.adminToken(role)).token
    // The assertion signing key exists once keyvalet has published its JWKS.
    await (await fetch(`${kv.url}/.well-known/jwks.json`)).text()
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('GET /v1/config: the configuration in force for every role that may read it, naming secrets and never holding one', async () => {
    const stored = await kv.runtime.vault.list()
    assert.ok(stored.some((s) => s.name.startsWith('keyvalet.')), 'keyvalet keeps its own keys (audit, assertion) in the vault too')
    const values = [...Object.values(SECRETS)]
    for (const s of stored) values.push(Buffer.from((await kv.runtime.vault.openOptional(s.name)) ?? '').toString('base64'), ((await kv.runtime.vault.openOptional(s.name)) ?? Buffer.alloc(0)).toString('hex'))
    for (const role of ['admin', 'operator', 'auditor'] as const) {
      const got = await call(kv, 'GET', '/v1/config', tokens[role])
      assert.equal(got.status, 200, got.text)
      assert.equal(got.json.version, kv.live.current.version)
      assert.match(got.json.version, /^cfg_[0-9a-f]{16}$/)
      assert.deepEqual(got.json.reloadable, ['connectors', 'tunnels', 'limits.max_body_inspect_bytes', 'limits.approval_body_bytes', 'limits.approvals_per_session'])
      assert.equal(got.json.config.connectors.github.credential.secret, 'github-token')
      assert.equal(got.json.config.connectors.crm.credential.oauth_client.client_secret, 'crm-client-secret')
      assert.equal(got.json.config.limits.upstream_timeout_ms, 30000, 'defaults are filled in')
      for (const value of values) assert.ok(!got.text.includes(value), 'no secret value, client secret or private key appears')
      assert.doesNotMatch(got.text, /PRIVATE KEY|"d":"/)
    }
  })

  it('POST /v1/explain: the decision, the rule and the reason, from the same decide as the data plane; nothing is sent', async () => {
    const before = upstream.received.length
    const ask = (body: Record<string, unknown>, role: AdminRole = 'operator') => call(kv, 'POST', '/v1/explain', tokens[role], body)
    const allowed = await ask({ grant: ['github:read'], method: 'GET', url: '/github/repos/acme/app/issues/7' })
    assert.equal(allowed.status, 200, allowed.text)
    const { decision, reason, rule, connector, path, via, code, severity, config_version } = allowed.json
    assert.deepEqual({ decision, reason, rule, connector, path, via, code, severity, config_version }, { decision: 'allow', reason: 'rule_matched', rule: 'read-issues', connector: 'github', path: '/repos/acme/app/issues/7', via: 'gateway_path', code: null, severity: { needed: 'read', granted: 'read' }, config_version: kv.live.current.version })
    assert.ok(allowed.json.rules.some((s: { rule: string; outcome: string }) => s.rule === 'read-issues' && s.outcome === 'allow'))
    // keyvalet explain on the command line gives the same answer: one engine behind both.
    const local = await cli(['explain', '--config', kv.configFile, '--grant', 'github:read', '--json', 'GET', '/github/repos/acme/app/issues/7'])
    assert.equal(local.code, 0, local.stderr)
    assert.deepEqual(JSON.parse(local.stdout), allowed.json)
    assert.equal((await ask({ grant: ['github:read'], method: 'POST', url: '/github/repos/acme/app/issues', headers: { 'Content-Type': 'application/json' }, body: '{"title":"hi"}' }, 'admin')).json.reason, 'severity_exceeds_grant')
    const body = (text: string) => ask({ grant: ['github:write'], method: 'POST', url: `${upstream.url}/api/repos/acme/app/issues`, headers: { 'content-type': 'application/json' }, body: text })
    assert.deepEqual([(await body('{"title":"hi"}')).json.decision, (await body('{"title":"hi"}')).json.rule], ['allow', 'create-issue'], 'an absolute URL is matched on the upstream, as the forward proxy does')
    assert.deepEqual([(await body('{"title":"far too long a title here"}')).json.reason, (await body('{"title":1,"title":2}')).json.reason], ['body_not_allowed', 'body_not_allowed'])
    assert.equal((await ask({ grant: ['github:read'], method: 'GET', url: '/github/repos/acme/other' })).json.reason, 'no_rule_for_path')
    assert.equal((await ask({ grant: ['crm:read'], method: 'GET', url: '/github/repos/acme/app/issues/7' })).json.reason, 'not_in_grant')
    assert.equal((await ask({ grant: ['github:read'], method: 'GET', url: '/github/repos/acme/app/issues/%2e%2e/x' })).json.reason, 'path_ambiguous')
    assert.equal((await ask({ grant: ['github:read'], method: 'GET', url: '/nope/x' })).json.reason, 'connector_unknown')
    assert.equal((await ask({ grant: ['github:read'], method: 'GET', url: 'https://elsewhere.example/x' })).json.reason, 'destination_refused')
    const badGrant = await ask({ grant: ['github:root'], method: 'GET', url: '/github/x' })
    assert.deepEqual([badGrant.status, badGrant.error], [400, 'admin_request_invalid'])
    assert.match(badGrant.json.error.message, /grant: invalid grant "github:root"/)
    assert.equal((await ask({ grant: ['github:read'], method: 'GET', url: '/github/x' }, 'auditor')).status, 403)
    assert.equal(upstream.received.length, before, 'explain never reaches an upstream')
    const records = (await kv.audit()).filter((r) => r.mode === 'admin' && r.action === 'config.explain')
    assert.ok(records.length >= 10 && records.every((r) => r.config_version === kv.live.current.version))
  })

  it('POST /v1/explain says what the gateway then decides, request for request', async () => {
    const { key } = await kv.mintKey(['github:read'])
    const cases: { method: string; path: string; headers?: Record<string, string>; body?: string }[] = [
      { method: 'GET', path: '/github/repos/acme/app/issues/3' },
      { method: 'GET', path: '/github/repos/acme/app/pulls/3' },
      { method: 'DELETE', path: '/github/repos/acme/app/issues/3' },
      { method: 'POST', path: '/github/repos/acme/app/issues', headers: { 'content-type': 'application/json' }, body: '{"title":"x"}' },
      { method: 'GET', path: '/github/repos/acme/app/issues/3', headers: { 'content-type': 'text/plain' }, body: 'hello' },
      { method: 'GET', path: '/crm/reports/1' },
    ]
    for (const c of cases) {
      const explained = await call(kv, 'POST', '/v1/explain', tokens.operator, { grant: ['github:read'], method: c.method, url: c.path, ...(c.headers === undefined ? {} : { headers: c.headers }), ...(c.body === undefined ? {} : { body: c.body }) })
      // undici's request, which sends a body with GET as a client may (fetch refuses to).
      const res = await request(`${kv.url}${c.path}`, { method: c.method as 'GET', headers: { authorization: `Bearer ${key}`, ...c.headers }, ...(c.body === undefined ? {} : { body: c.body }) })
      await res.body.dump()
      const record = (await kv.audit()).filter((r) => r.mode === 'gateway').at(-1)
      const label = `${c.method} ${c.path}`
      // The gateway also fails an allowed request it cannot complete (no credential for crm here): compare what the policy said.
      if (record?.decision === 'allow' || record?.error === 'policy_denied' || record?.error === 'body_unexpected') {
        assert.deepEqual([explained.json.decision, explained.json.reason, explained.json.rule], [record.decision, record.reason, record.rule], label)
      } else {
        assert.deepEqual([explained.json.decision, explained.json.reason], ['allow', 'rule_matched'], `${label}: allowed by the policy, then ${record?.error}`)
      }
    }
  })

  it('POST /v1/config/reload: admin only; applied, then a broken file is refused with its errors and the old version stays', async () => {
    const first = kv.live.current.version
    assert.equal((await call(kv, 'POST', '/v1/config/reload', tokens.operator)).status, 403)
    assert.deepEqual((await call(kv, 'POST', '/v1/config/reload', tokens.admin)).json, { result: 'unchanged', version: first, warnings: [] })
    writeFileSync(kv.configFile, config(upstream, '/repos/acme/**'))
    const applied = await call(kv, 'POST', '/v1/config/reload', tokens.admin)
    assert.equal(applied.status, 200, applied.text)
    assert.equal(applied.json.result, 'applied')
    assert.equal(applied.json.previous, first)
    assert.equal(kv.live.current.version, applied.json.version)
    assert.ok(applied.json.warnings.some((w: string) => /^connectors\.github\.upstream: .* is cleartext http/.test(w)), 'the warnings keyvalet check would print')

    writeFileSync(kv.configFile, config(upstream).replace('severity: read', 'severity: sometimes'))
    const broken = await call(kv, 'POST', '/v1/config/reload', tokens.admin)
    assert.deepEqual([broken.status, broken.error], [422, 'config_invalid'])
    assert.match(broken.json.error.message, /keyvalet\.yaml:\d+: connectors\.github\.rules\[0\]\.severity: must be one of/)
    assert.equal(kv.live.current.version, applied.json.version, 'the configuration in force stays')

    writeFileSync(kv.configFile, config(upstream).replace('admin: "127.0.0.1:0"', 'admin: "127.0.0.1:1"'))
    const fixed = await call(kv, 'POST', '/v1/config/reload', tokens.admin)
    assert.deepEqual([fixed.status, fixed.error], [409, 'config_reload_refused'])
    assert.match(fixed.json.error.message, /cannot change listen\.admin/)

    const records: AuditRecord[] = (await kv.audit()).filter((r) => r.action === 'config.reload')
    assert.deepEqual(records.map((r) => [r.status, r.error]), [[403, 'admin_role_forbidden'], [200, null], [200, null], [422, 'config_invalid'], [409, 'config_reload_refused']])
    assert.deepEqual(kv.live.counts, { applied: 1, unchanged: 1, failed: 2 })
  })
})
