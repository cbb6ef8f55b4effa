import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { cli, MAIN } from '../helpers/cli.ts'
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
`
}

const lines = (text: string): AuditRecord[] => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord)

describe('CLI: keyvalet audit with filters, locally and --server through the admin API', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const send = async (key: string, path: string): Promise<void> => void (await (await fetch(`${kv.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).text())
  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream), { admin: {} })
    const a = await kv.mintKey(['github:read'], { agent: 'bot-a' })
    const b = await kv.mintKey(['github:read'], { agent: 'bot-b' })
    await send(a.key, '/github/issues/1')
    await send(b.key, '/github/issues/2')
    await send(a.key, '/github/nope')
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  it('tail filters the same locally and remotely, and the remote lines are the stored lines', async () => {
    const local = await cli(['audit', 'tail', '--agent', 'bot-a', '--config', kv.configFile], { env: { KEYVALET_MASTER_KEY: kv.masterKey } })
    assert.equal(local.code, 0, local.stderr)
    assert.deepEqual(lines(local.stdout).map((r) => [r.path, r.decision]), [['/gh/issues/1', 'allow'], ['/gh/nope', 'deny']])
    const env = { KEYVALET_ADMIN_TOKEN: (await kv.adminToken('auditor')).token }
    const remote = await cli(['audit', 'tail', '--agent', 'bot-a', '--server', kv.adminUrl as string], { env })
    assert.equal(remote.code, 0, remote.stderr)
    assert.equal(remote.stdout, local.stdout, 'the same records, byte for byte')
    const denied = await cli(['audit', 'tail', '-n', '1', '--decision', 'deny', '--error', 'policy_denied', '--server', kv.adminUrl as string], { env })
    assert.deepEqual(lines(denied.stdout).map((r) => r.path), ['/gh/nope'])
    const verified = await cli(['audit', 'verify', '--server', kv.adminUrl as string], { env })
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, /^ok: \d+ records in 1 chain, every chain intact\n  instance ins_[0-9a-f]{16}: \d+ records, last hash [0-9a-f]{64}/)
    const operator = await cli(['audit', 'verify', '--server', kv.adminUrl as string], { env: { KEYVALET_ADMIN_TOKEN: (await kv.adminToken('operator')).token } })
    assert.equal(operator.code, 1)
    assert.match(operator.stderr, /admin_role_forbidden, HTTP 403/)
    const open = await cli(['audit', 'tail', '--open', '--server', kv.adminUrl as string], { env })
    assert.match(open.stderr, /local database only/)
  })

  it('tail --follow --server prints new matching records as they come', async () => {
    const env = { PATH: process.env.PATH, KEYVALET_ADMIN_TOKEN: (await kv.adminToken('auditor', { name: 'follower' })).token }
    const child = spawn(process.execPath, [MAIN, 'audit', 'tail', '-n', '0', '--follow', '--agent', 'bot-c', '--server', kv.adminUrl as string], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    try {
      // Following from now: wait (bounded) until it has asked where now is and opened the live stream.
      const calls = async () => (await kv.audit()).filter((r) => r.actor?.name === 'follower').map((r) => r.action)
      for (let i = 0; i < 400 && !(await calls()).includes('audit.stream'); i++) await new Promise((r) => setTimeout(r, 25))
      const c = await kv.mintKey(['github:read'], { agent: 'bot-c' })
      await send(c.key, '/github/issues/3')
      await send(c.key, '/github/issues/4')
      for (let i = 0; i < 200 && out.split('\n').length < 3; i++) await new Promise((r) => setTimeout(r, 25))
      assert.deepEqual(lines(out).map((r) => [r.agent, r.path]), [['bot-c', '/gh/issues/3'], ['bot-c', '/gh/issues/4']])
      assert.deepEqual(await calls(), ['openapi.get', 'audit.query', 'audit.stream'], 'the client finds its routes, asks where now is, then follows in one audited call, not one per poll')
    } finally {
      child.kill('SIGTERM')
    }
  })
})
