import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { killListenConnections, propagatedWithin } from '../helpers/fleet.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres, storeBlock } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** What the issue asks: a change through one instance takes effect on every other within this. */
const PROPAGATION_LIMIT_MS = 1000
const SECRET = 'ghp_fleet-secret-0123456789'
const ROTATED = 'ghp_fleet-rotated-9876543210'

let server: TestPostgres
let upstream: Upstream
/** Three keyvalet instances on one PostgreSQL database, each with its admin listener. */
let fleet: TestKeyvalet[] = []
let database = ''

before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  const db = await server.database()
  const store = storeBlock(server, db)
  database = db.database
  const config = `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
${store.yaml}connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
`
  const files = store.files
  const masterKey = randomBytes(32).toString('base64')
  for (let i = 0; i < 3; i++) fleet.push(await startKeyvalet(config, { files, masterKey, admin: {} }))
})
after(async () => {
  for (const kv of fleet) await kv.close()
  fleet = []
  await upstream?.close()
  await server?.stop()
})

function instance(i: number): TestKeyvalet {
  const kv = fleet[i]
  if (kv === undefined) throw new Error(`no instance ${i}`)
  return kv
}

function readsOf(kv: TestKeyvalet) {
  assert.ok(kv.runtime.store instanceof PostgresStore)
  return kv.runtime.store.reads
}

async function proxied(kv: TestKeyvalet, key: string, path: string) {
  const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
  const body = await res.body.text()
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'], body }
}

async function admin(kv: TestKeyvalet, token: string, method: 'GET' | 'POST', path: string) {
  const res = await request(`${kv.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
  const text = await res.body.text()
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'], text }
}

/**
 * Asks `check` again (bounded: every 5 ms, for at most 3 × the limit) until it holds; the time it
 * took from `since`. A check that never holds fails the test with its last answer.
 */

describe('a fleet of three instances on one PostgreSQL store', () => {
  it('a session revoked through one instance is refused by the other two within 1 s, from kept reads before; again after the LISTEN connections were killed', async () => {
    await instance(0).setSecret('up-token', SECRET)
    const { token } = await instance(0).adminToken('operator')
    for (const round of ['notified', 'after the LISTEN connections were killed']) {
      const { key, session } = await instance(0).mintKey(['up:read'])
      // Warm: the session and the secret are kept by the other two; later requests are answered from them.
      for (const i of [1, 2]) {
        // A request answered with its session and secret both from kept reads. (A read that met a
        // notification, such as the new session's own, is not kept, and a late heartbeat on a
        // loaded machine sends reads to the server: ask again, bounded.)
        let fromKept = false
        for (let n = 0; n < 50 && !fromKept; n++) {
          const hits = readsOf(instance(i)).hits
          assert.equal((await proxied(instance(i), key, '/warm')).status, 200)
          fromKept = readsOf(instance(i)).hits >= hits + 2
          if (!fromKept) await new Promise((resolve) => setTimeout(resolve, 20))
        }
        assert.ok(fromKept, `instance ${i} answered a request from its kept session and secret`)
      }
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      if (round !== 'notified') assert.equal(await killListenConnections(server, database), 3, 'each instance had one LISTEN connection')

      const revoked = await admin(instance(0), token, 'POST', `/v1/sessions/${session}/revoke`)
      assert.equal(revoked.status, 200, revoked.text)
      const since = performance.now() // the revocation is committed once acknowledged
      for (const i of [1, 2]) {
        const took = await propagatedWithin(since, PROPAGATION_LIMIT_MS, async () => {
          const answer = await proxied(instance(i), key, '/after-revoke')
          return { ok: answer.status === 401 && answer.error === 'task_key_revoked', last: answer }
        })
        assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} refused the revoked key ${Math.round(took)} ms after the revoke (${round})`)
      }
      // Once refused, refused for good: the upstream gets nothing more, and the audit has the refusals.
      const forwarded = upstream.received.length
      for (const i of [0, 1, 2]) assert.equal((await proxied(instance(i), key, '/later')).error, 'task_key_revoked')
      assert.equal(upstream.received.length, forwarded, 'no request with the revoked key reached the upstream')
      const records = await instance(0).audit()
      const refusals = records.filter((r) => r.session === session && r.error === 'task_key_revoked')
      assert.ok(refusals.length >= 2, `the refusals are audited (${refusals.length})`)
      assert.ok(refusals.every((r) => r.decision === 'deny' && r.status === 401))
    }
  })

  it('an admin token revoked through one instance is refused by the other two within 1 s, before and after the LISTEN connections were killed', async () => {
    const { token: operator } = await instance(0).adminToken('admin')
    for (const round of ['notified', 'after the LISTEN connections were killed']) {
      const { token, id } = await instance(0).adminToken('operator', { name: `orchestrator-${round.length}` })
      for (const i of [1, 2]) assert.equal((await admin(instance(i), token, 'GET', '/v1/whoami')).status, 200)
      if (round !== 'notified') assert.equal(await killListenConnections(server, database), 3)
      const revoked = await admin(instance(0), operator, 'POST', `/v1/admin-tokens/${id}/revoke`)
      assert.equal(revoked.status, 200, revoked.text)
      const since = performance.now()
      for (const i of [1, 2]) {
        const took = await propagatedWithin(since, PROPAGATION_LIMIT_MS, async () => {
          const answer = await admin(instance(i), token, 'GET', '/v1/whoami')
          return { ok: answer.status === 401 && answer.error === 'admin_token_revoked', last: answer }
        })
        assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} refused the revoked admin token ${Math.round(took)} ms after (${round})`)
      }
      const records = await instance(0).audit()
      assert.ok(records.some((r) => r.mode === 'admin' && r.error === 'admin_token_revoked'), 'the refused admin call is audited')
    }
  })

  it('a secret rotated through one instance is sent by the other two within 1 s, and a deleted one refused', async () => {
    await instance(0).setSecret('up-token', SECRET)
    const { key } = await instance(0).mintKey(['up:read'])
    for (const i of [1, 2]) assert.equal((await proxied(instance(i), key, '/warm')).status, 200)

    await instance(0).setSecret('up-token', ROTATED)
    const rotatedAt = performance.now()
    for (const i of [1, 2]) {
      const took = await propagatedWithin(rotatedAt, PROPAGATION_LIMIT_MS, async () => {
        const answer = await proxied(instance(i), key, `/rotated-${i}`)
        const sent = upstream.received.at(-1)
        return { ok: answer.status === 200 && sent?.url === `/rotated-${i}` && sent.headers.authorization === `Bearer ${ROTATED}`, last: [answer.status, sent?.headers.authorization === `Bearer ${SECRET}` ? 'old secret' : 'other'] }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} sent the rotated secret ${Math.round(took)} ms after the rotation`)
    }

    assert.equal(await killListenConnections(server, database), 3)
    assert.equal(await instance(0).runtime.vault.delete('up-token'), true)
    const deletedAt = performance.now()
    for (const i of [1, 2]) {
      const took = await propagatedWithin(deletedAt, PROPAGATION_LIMIT_MS, async () => {
        const answer = await proxied(instance(i), key, '/deleted')
        return { ok: answer.status === 502 && answer.error === 'credential_unavailable', last: answer }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} refused the deleted secret ${Math.round(took)} ms after`)
    }
    const forwarded = upstream.received.length
    for (const i of [0, 1, 2]) assert.equal((await proxied(instance(i), key, '/deleted')).error, 'credential_unavailable')
    assert.equal(upstream.received.length, forwarded, 'nothing reached the upstream without its credential')
    const records = await instance(0).audit()
    assert.ok(records.some((r) => r.error === 'credential_unavailable' && r.path === '/deleted'), 'the refusal is audited')
    for (const r of records) assert.ok(!JSON.stringify(r).includes(SECRET) && !JSON.stringify(r).includes(ROTATED))
  })
  it('a new configuration version through one instance shows in GET /v1/fleet on the others within 1 s, and in the audit records', async () => {
    const { token } = await instance(0).adminToken('admin')
    const fleetThrough = async (i: number) => {
      const res = await admin(instance(i), token, 'GET', '/v1/fleet')
      assert.equal(res.status, 200, res.text)
      return JSON.parse(res.text) as { instance: string; config_version: string; consistent: boolean; versions: { config_version: string; instances: number }[]; instances: { instance: string; config_version: string; host: string; pid: number }[] }
    }
    const ids = fleet.map((kv) => kv.auditWriter.instance)
    const before = instance(0).live.current.version
    const start = await fleetThrough(1)
    assert.equal(start.instance, ids[1])
    assert.deepEqual(start.instances.map((r) => r.instance).sort(), [...ids].sort(), 'every instance reported itself at start')
    assert.deepEqual(start.versions, [{ config_version: before, instances: 3 }])
    assert.equal(start.consistent, true)
    assert.ok(start.instances.every((r) => r.pid === process.pid && r.host.length > 0))

    // Instance 0's host gets a new file (a rule more) and reloads it.
    writeFileSync(instance(0).configFile, readFileSync(instance(0).configFile, 'utf8').replace('path: /**, severity: read }', 'path: /**, severity: read }\n      - { id: write, methods: [POST], path: /items, severity: write }'))
    const reloaded = await admin(instance(0), token, 'POST', '/v1/config/reload')
    assert.equal(reloaded.status, 200, reloaded.text)
    const after = (JSON.parse(reloaded.text) as { version: string }).version
    assert.notEqual(after, before)
    const since = performance.now()
    for (const i of [1, 2]) {
      const took = await propagatedWithin(since, PROPAGATION_LIMIT_MS, async () => {
        const view = await fleetThrough(i)
        const zero = view.instances.find((r) => r.instance === ids[0])
        return { ok: zero?.config_version === after, last: view }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} showed instance 0's new version ${Math.round(took)} ms after the reload`)
    }
    const mixed = await fleetThrough(2)
    assert.equal(mixed.consistent, false)
    assert.deepEqual(mixed.versions, [{ config_version: before, instances: 2 }, { config_version: after, instances: 1 }])
    assert.equal(mixed.config_version, before, 'instance 2 still serves under its own file')

    // The audit records name the version each request was decided under.
    await instance(0).setSecret('up-token', SECRET)
    const { key } = await instance(0).mintKey(['up:read'])
    assert.equal((await proxied(instance(0), key, '/v-after')).status, 200)
    assert.equal((await proxied(instance(1), key, '/v-before')).status, 200)
    const records = await instance(0).audit()
    assert.equal(records.find((r) => r.path === '/v-after')?.config_version, after)
    assert.equal(records.find((r) => r.path === '/v-before')?.config_version, before)
  })
})
