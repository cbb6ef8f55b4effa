import assert from 'node:assert/strict'
import { userInfo } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import { eventually } from '../helpers/approvals.ts'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

describe('keyvalet approvals: list, approve and deny from another process, on the local store or through --server', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  const client = new Agent()

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
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
  })
  after(async () => {
    await client.close()
    await kv.close()
    await upstream.close()
  })

  const post = (key: string, name: string) =>
    request(`${kv.url}/api/items`, { method: 'POST', dispatcher: client, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
      .then(async (res) => ({ status: res.statusCode, text: await res.body.text() }))
  const local = (args: string[]) => cli([...args, '--config', kv.configFile], { env: { KEYVALET_MASTER_KEY: kv.masterKey } })
  const pendingOf = (session: string) => eventually(async () => {
    const listed = await local(['approvals', 'list', '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    return (JSON.parse(listed.stdout) as { id: string; session: string; summary: string }[]).find((a) => a.session === session)
  }, 'the pending approval')

  it('on the local database: list shows who and what; approve forwards it; the decision is recorded as the local user', async () => {
    const { key, session } = await kv.mintKey(['api:write'])
    const answer = post(key, 'bolt\u0007\u001b]0;x')
    const pending = await pendingOf(session)
    assert.equal(pending.summary, 'Add bolt  ]0;x')
    const shown = await local(['approvals', 'list'])
    assert.match(shown.stdout, new RegExp(`${pending.id}\tpending until `))
    assert.match(shown.stdout, /what: {4}POST 127\.0\.0\.1:\d+\/items \(connector api, rule post\)/)
    assert.ok(!/[\u0000-\u0008\u000b-\u001f]/.test(shown.stdout), 'no control character from the sandbox reaches the terminal')
    const approved = await local(['approvals', 'approve', pending.id])
    assert.equal(approved.code, 0, approved.stderr)
    assert.match(approved.stdout, new RegExp(`approved by local:${userInfo().username}`))
    assert.equal((await answer).status, 200)
    assert.equal(upstream.received.length, 1)
    const record = (await kv.audit()).find((r) => r.session === session)
    assert.deepEqual(record?.approval?.approver, { id: 'local', name: `local:${userInfo().username}` })
    const again = await local(['approvals', 'deny', pending.id, '--reason', 'late'])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /no longer pending: it was approved/)
  })

  it('through --server with the admin token in the environment: deny with a reason', async () => {
    const { key, session } = await kv.mintKey(['api:write'])
    const operator = await kv.adminToken('operator', { name: 'erin' })
    const answer = post(key, 'nut')
    const pending = await pendingOf(session)
    const denied = await cli(['approvals', 'deny', pending.id, '--reason', 'not today', '--server', kv.adminUrl as string], { env: { KEYVALET_ADMIN_TOKEN: operator.token } })
    assert.equal(denied.code, 0, denied.stderr)
    assert.match(denied.stdout, /denied by erin \(kat_[^)]+\): not today/)
    const res = await answer
    assert.equal(res.status, 403)
    assert.match(JSON.parse(res.text).error.message, /not today/)
    const missing = await local(['approvals', 'deny', pending.id])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /needs --reason/)
  })
})
