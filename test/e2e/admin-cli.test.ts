import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_sentByTheRemoteCli_0123456789abcdef'

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

describe('CLI: admin tokens locally; session and secret --server through the admin API', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let local: NodeJS.ProcessEnv
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: {} })
    local = { KEYVALET_MASTER_KEY: kv.masterKey, KEYVALET_CONFIG: kv.configFile }
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('admin token create prints a kva_ token once; list shows no value; the token works until revoke', async () => {
    const created = await cli(['admin', 'token', 'create', '--name', 'ci-bot', '--role', 'operator', '--ttl', '90d', '--json'], { env: local })
    assert.equal(created.code, 0, created.stderr)
    const { id, token, role, expires_at: expires } = JSON.parse(created.stdout) as { id: string; token: string; role: string; expires_at: string }
    assert.match(token, /^kva_/)
    assert.equal(role, 'operator')
    assert.ok(Date.parse(expires) > Date.now() + 89 * 86_400_000)
    const listed = await cli(['admin', 'token', 'list'], { env: local })
    assert.match(listed.stdout, new RegExp(`^${id}\tactive\toperator\tci-bot\texpires `))
    assert.ok(!listed.stdout.includes(token.slice(4)))
    const env = { KEYVALET_ADMIN_TOKEN: token }
    assert.equal((await cli(['session', 'list', '--server', kv.adminUrl as string], { env })).code, 0)
    assert.equal((await cli(['admin', 'token', 'revoke', id], { env: local })).stdout, `revoked ${id}\n`)
    const refused = await cli(['session', 'list', '--server', kv.adminUrl as string], { env })
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^keyvalet session: The admin token has been revoked\. \(admin_token_revoked, HTTP 401\)\n/)
    const badRole = await cli(['admin', 'token', 'create', '--name', 'x', '--role', 'root'], { env: local })
    assert.match(badRole.stderr, /unknown admin role "root"/)
  })

  it('secret set/list/delete --server: the value goes from stdin to the vault and is used by the gateway; never printed', async () => {
    const env = { KEYVALET_ADMIN_TOKEN: (await kv.adminToken('admin')).token }
    const server = ['--server', kv.adminUrl as string]
    const set = await cli(['secret', 'set', 'github-token', ...server], { env, input: `${SECRET}\n` })
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /^stored secret github-token \(encrypted with master key /)
    const listed = await cli(['secret', 'list', '--json', ...server], { env })
    assert.deepEqual((JSON.parse(listed.stdout) as { name: string }[]).map((s) => s.name), ['github-token'])
    assert.ok(!listed.stdout.includes(SECRET))
    const { key } = await kv.mintKey(['github:read'])
    const res = await fetch(`${kv.url}/github/repos/acme/app/issues/1`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(res.status, 200)
    await res.text()
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    assert.equal((await cli(['secret', 'delete', 'github-token', ...server], { env })).stdout, 'deleted secret github-token\n')
    const again = await cli(['secret', 'delete', 'github-token', ...server], { env })
    assert.match(again.stderr, /No secret github-token\. \(admin_not_found, HTTP 404\)/)
    const operator = await cli(['secret', 'list', ...server], { env: { KEYVALET_ADMIN_TOKEN: (await kv.adminToken('operator')).token } })
    assert.match(operator.stderr, /admin_role_forbidden, HTTP 403/)
  })

  it('session create --server --env prints the environment of the running listeners; list and revoke work remotely', async () => {
    const env = { KEYVALET_ADMIN_TOKEN: (await kv.adminToken('operator')).token }
    const server = ['--server', kv.adminUrl as string]
    const created = await cli(['session', 'create', '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'github:read', '--env', ...server], { env })
    assert.equal(created.code, 0, created.stderr)
    const sessionId = /keyvalet session (ses_[0-9a-f]+) for agent bot/.exec(created.stdout)?.[1]
    assert.ok(sessionId !== undefined, created.stdout)
    assert.match(created.stdout, new RegExp(`^export KEYVALET_GITHUB_URL=${kv.url}/github$`, 'm'))
    assert.match(created.stdout, /^export KEYVALET_TASK_KEY=kvt_/m)
    const listed = await cli(['session', 'list', '--json', ...server], { env })
    assert.ok((JSON.parse(listed.stdout) as { id: string; state: string }[]).some((s) => s.id === sessionId && s.state === 'active'))
    assert.equal((await cli(['session', 'revoke', sessionId, ...server], { env })).stdout, `revoked ${sessionId}\n`)
    assert.equal((await kv.runtime.sessions.get(sessionId))?.revokedAt !== undefined, true)
    const missing = await cli(['session', 'list', ...server], { env: {} })
    assert.match(missing.stderr, /--server needs an admin token in KEYVALET_ADMIN_TOKEN/)
    const refused = await cli(['session', 'create', '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'nope:read', ...server], { env })
    assert.match(refused.stderr, /no connector named nope.*\(admin_request_invalid, HTTP 400\)/s)
  })
})
