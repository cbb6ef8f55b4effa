import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { PostgresLocation } from '../../src/store/location.ts'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { cli } from '../helpers/cli.ts'
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let server: TestPostgres
let upstream: Upstream
let dir: string
before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'keyvalet-spool-'))
})
after(async () => {
  await upstream?.close()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function auditIn(db: PostgresLocation): Promise<AuditRecord[]> {
  const store = await PostgresStore.open(db, { max: 1 })
  try {
    return (await store.audit.read(0, 100_000)).map((row) => JSON.parse(row.line) as AuditRecord)
  } finally {
    await store.close()
  }
}

it('PostgreSQL stopped under a running keyvalet: records of the answers given meanwhile are spooled, reach their chain when it is back, and verify', { skip: process.env.KEYVALET_TEST_POSTGRES_URL ? 'an outside server cannot be stopped by the test' : false }, async () => {
  const db = await server.database()
  writeFileSync(join(dir, 'pw'), `${db.password ?? ''}\n`, { mode: 0o600 })
  writeFileSync(join(dir, 'ca.pem'), server.caPem ?? '')
  const dataDir = join(dir, 'data')
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${dataDir}
audit: { fsync: true }
store:
  url: postgres://${db.user}@${db.host}:${db.port}/${db.database}
  password_file: pw
  tls: { ca_file: ca.pem }
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`)
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const kv = await startChildKeyvalet({ configFile, env })
  /** Every answer the client received whole: its request id, status and path. */
  const answered: { id: string; status: number; path: string }[] = []
  const send = async (path: string, key?: string): Promise<number> => {
    const res = await request(`${kv.url}/up${path}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })
    await res.body.text()
    answered.push({ id: String(res.headers['x-keyvalet-request-id']), status: res.statusCode, path })
    return res.statusCode
  }
  try {
    const mint = async (): Promise<string> => {
      const created = await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
      assert.equal(created.code, 0, created.stderr)
      return (JSON.parse(created.stdout) as { key: string }).key
    }
    const key = await mint()
    const unkept = await mint()
    assert.equal(await send('/before', key), 200)

    await server.pause()
    // Refusals that need nothing from the store (no task key) are answered, their records spooled.
    for (let i = 0; i < 5; i++) assert.equal(await send(`/during/${i}`), 401)
    // A session this instance keeps is served within store.unavailable_grace: forwarded, its record spooled.
    assert.equal(await send('/during/kept', key), 200)
    // One it never read fails closed at once.
    assert.equal(await send('/during/unkept', unkept), 503)
    const spoolDir = join(dataDir, 'audit-spool')
    assert.ok(existsSync(spoolDir) && readdirSync(spoolDir).some((n) => n.endsWith('.jsonl')), 'records are in the spool')
    assert.deepEqual(upstream.received.filter((r) => r.url.startsWith('/during')).map((r) => r.url), ['/during/kept'], 'only the kept session was forwarded during the outage')

    await server.resume()
    // Everything resumes by itself: the spool is flushed into the chain (bounded wait).
    for (let i = 0; i < 100 && readdirSync(spoolDir).some((n) => n.endsWith('.jsonl')); i++) await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(readdirSync(spoolDir).filter((n) => n.endsWith('.jsonl')), [], 'the spool is empty once flushed')
    assert.equal(await send('/after', key), 200)
  } finally {
    await kv.stop('SIGTERM')
  }
  const records = await auditIn(db)
  const byId = new Map(records.map((r) => [r.request_id, r]))
  assert.deepEqual(answered.filter((a) => byId.get(a.id)?.status !== a.status), [], 'every answer has its record')
  assert.equal(answered.length, 9)
  assert.deepEqual([answered[0], answered[8]].map((a) => byId.get(a?.id ?? '')?.path), ['/before', '/after'])
  assert.deepEqual(answered.slice(1, 6).map((a) => byId.get(a.id)?.error), Array(5).fill('task_key_missing'))
  assert.deepEqual(answered.slice(6, 8).map((a) => [byId.get(a.id)?.status, byId.get(a.id)?.error]), [[200, null], [503, 'store_unavailable']])
  assert.equal(byId.get(answered[6]?.id ?? '')?.path, '/during/kept')
  assert.equal(new Set(records.map((r) => r.instance)).size, 1, 'one instance, one chain, in order')
  assert.deepEqual(records.map((r) => r.seq), records.map((_, i) => i + 1))
  const verified = await cli(['audit', 'verify', '--config', configFile], { env })
  assert.equal(verified.code, 0, verified.stdout + verified.stderr)
  assert.match(verified.stdout, new RegExp(`^ok: ${records.length} records in 1 chain`))
})
