import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { KeyvaletError } from '../../src/errors.ts'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_outage-secret-0123456789'
const GRACE_MS = 5000

let server: TestPostgres
let upstream: Upstream
let kv: TestKeyvalet

before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  if (process.env.KEYVALET_TEST_POSTGRES_URL) return // the describe below is skipped: an outside server cannot be stopped
  const db = await server.database()
  kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
store:
  url: postgres://${db.user}@${db.host}:${db.port}/${db.database}
  password_file: pg.pw
  tls: { ca_file: ca.pem }
  unavailable_grace: ${GRACE_MS / 1000}s
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
`, { files: { 'pg.pw': `${db.password ?? ''}\n`, 'ca.pem': server.caPem ?? '' }, masterKey: randomBytes(32).toString('base64'), admin: {} })
})
after(async () => {
  await kv?.close()
  await upstream?.close()
  await server?.stop()
})

async function proxied(key: string, path: string) {
  const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'], body: await res.body.text() }
}

async function readiness() {
  const res = await request(`${kv.adminUrl}/readyz`)
  return { status: res.statusCode, body: JSON.parse(await res.body.text()) as { status: string; failing: string[]; checks: Record<string, string> } }
}

const storeUnavailable = (err: unknown): boolean => err instanceof KeyvaletError && err.code === 'store_unavailable' && err.status === 503

describe('PostgreSQL unavailable under a running keyvalet', { skip: process.env.KEYVALET_TEST_POSTGRES_URL ? 'an outside server cannot be stopped by the test' : false }, () => {
  it('kept sessions and secrets answer for store.unavailable_grace, others at once store_unavailable; /readyz says the store is down; all resumes when the server is back', async () => {
    await kv.setSecret('up-token', SECRET)
    const kept = await kv.mintKey(['up:read'])
    const unkept = await kv.mintKey(['up:read'])
    const { token } = await kv.adminToken('admin')
    const adminCall = async (method: 'POST' | 'PUT', path: string, body?: unknown) => {
      const res = await request(`${kv.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
      return { status: res.statusCode, error: res.headers['x-keyvalet-error'], body: await res.body.text() }
    }
    assert.equal((await adminCall('POST', '/v1/sessions', { agent: 'a', user: 'u', workspace: 'w', task: 't', grant: ['up:read'] })).status, 201)

    // Warm: the session and the secret kept (a read that met a notification, such as the new
    // session's own arriving late on a loaded machine, is not kept: ask again, bounded).
    assert.ok(kv.runtime.store instanceof PostgresStore)
    const reads = kv.runtime.store.reads
    let fromKept = false
    for (let n = 0; n < 50 && !fromKept; n++) {
      const hits = reads.hits
      assert.equal((await proxied(kept.key, '/warm')).status, 200)
      fromKept = reads.hits >= hits + 2
      if (!fromKept) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.ok(fromKept, 'a request was answered from the kept session and secret')
    assert.equal((await readiness()).status, 200)

    // The grace counts from when the kept reads were last known current: at the latest, now.
    const down = performance.now()
    await server.pause()
    const restart = (): Promise<void> => server.resume()
    try {
      // The request path's reads, in the serving keyvalet: kept ones answer within the grace.
      assert.equal((await kv.runtime.sessions.authenticate(kept.key)).id, kept.session)
      assert.equal((await kv.runtime.vault.open('up-token')).toString(), SECRET)
      await assert.rejects(kv.runtime.sessions.authenticate(unkept.key), storeUnavailable)

      // What the sandbox gets for a key keyvalet does not keep: 503, nothing forwarded, no detail.
      const forwarded = upstream.received.length
      const refused = await proxied(unkept.key, '/during-outage')
      assert.equal(refused.status, 503, refused.body)
      assert.equal(refused.error, 'store_unavailable', refused.body)
      assert.ok(!/ECONNREFUSED|127\.0\.0\.1:\d+|postgres/i.test(refused.body), 'nothing about the store reaches the sandbox')
      assert.equal(upstream.received.length, forwarded)

      // Admin API writes (the caller's token is kept, so it is authenticated): 503 store_unavailable, not an internal error.
      const writes = [
        await adminCall('POST', '/v1/sessions', { agent: 'a', user: 'u', workspace: 'w', task: 't', grant: ['up:read'] }),
        await adminCall('POST', `/v1/sessions/${kept.session}/revoke`),
        await adminCall('PUT', '/v1/secrets/other-token', { value: 'ghp_other-0123456789' }),
      ]
      for (const write of writes) {
        assert.equal(write.status, 503, write.body)
        assert.equal(write.error, 'store_unavailable', write.body)
        assert.ok(!/ECONNREFUSED|CONNECTION|127\.0\.0\.1:\d+|postgres|at /i.test(write.body), `nothing about the store reaches the caller: ${write.body}`)
      }

      const ready = await readiness()
      assert.equal(ready.status, 503)
      assert.ok(ready.body.failing.includes('store'), JSON.stringify(ready.body))

      // Past the grace, kept reads fail closed too.
      const left = GRACE_MS - (performance.now() - down)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, left) + 300))
      await assert.rejects(kv.runtime.sessions.authenticate(kept.key), storeUnavailable)
      await assert.rejects(kv.runtime.vault.open('up-token'), storeUnavailable)
    } finally {
      await restart()
    }

    // Back by itself: readiness, then both keys, with their records.
    let ready = await readiness()
    for (let i = 0; i < 100 && ready.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      ready = await readiness()
    }
    assert.equal(ready.status, 200, JSON.stringify(ready.body))
    for (const [key, path] of [[kept.key, '/after-kept'], [unkept.key, '/after-unkept']] as const) {
      const answer = await proxied(key, path)
      assert.equal(answer.status, 200, answer.body)
      assert.equal(upstream.received.at(-1)?.url, path)
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    }
    // Records written during the outage went to the local spool; those after it queue behind them
    // there until the spool is flushed into the chain (within a retry or two).
    const recorded = await eventually(async () => {
      const found = (await kv.audit()).filter((r) => r.path?.startsWith('/after-') && r.phase !== 'open')
      return found.length >= 2 ? found : undefined
    }, 'the records of the requests after the outage')
    assert.deepEqual(recorded.map((r) => [r.path, r.status]), [['/after-kept', 200], ['/after-unkept', 200]])
    // Each refused admin write is audited once, as store_unavailable, and none was half done.
    const adminRecords = (await kv.audit()).filter((r) => r.mode === 'admin' && r.error === 'store_unavailable')
    assert.deepEqual(adminRecords.map((r) => [r.path, r.status]).sort(), [
      ['/v1/secrets/other-token', 503], [`/v1/sessions/${kept.session}/revoke`, 503], ['/v1/sessions', 503],
    ].sort())
    assert.equal((await kv.runtime.sessions.get(kept.session))?.revokedAt, undefined)
    assert.equal(await kv.runtime.vault.openOptional('other-token'), undefined)
  })
})
