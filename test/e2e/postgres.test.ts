import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import postgres from 'postgres'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { PostgresLocation } from '../../src/store/location.ts'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { MIGRATIONS } from '../../src/store/postgres/migrations.ts'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { cli } from '../helpers/cli.ts'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts'
import { makeTestPki } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_real-upstream-token-0123456789'

let server: TestPostgres
let upstream: Upstream
let dir: string
before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'keyvalet-pg-e2e-'))
})
after(async () => {
  await upstream?.close()
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const connectors = () => `connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
`

/** A config whose store is `db` on the test server, as `user` with the password in a file; TLS verify-full with `caPem`. */
function writeConfig(name: string, db: PostgresLocation, user: string, password: string, caPem = server.caPem, listen = '{ gateway: "127.0.0.1:0" }'): string {
  const folder = join(dir, name)
  const tls = db.tls.mode === 'disable' ? '{ mode: disable }' : caPem === undefined ? '{}' : '{ ca_file: ca.pem }'
  writeFileSync(join(dir, `${name}.pw`), `${password}\n`, { mode: 0o600 })
  if (caPem !== undefined) writeFileSync(join(dir, `${name}-ca.pem`), caPem)
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, `version: 1
listen: ${listen}
data_dir: ${folder}
store:
  url: postgres://${user}@${db.host}:${db.port}/${db.database}
  password_file: ${name}.pw
  tls: ${tls.replace('ca.pem', `${name}-ca.pem`)}
${connectors()}`)
  return file
}

/** The audit records in the database, read as its owner. */
async function auditIn(db: PostgresLocation): Promise<AuditRecord[]> {
  const store = await PostgresStore.open(db, { max: 1 })
  try {
    return (await store.audit.read(0, 10_000)).map((row) => JSON.parse(row.line) as AuditRecord)
  } finally {
    await store.close()
  }
}

describe('keyvalet on PostgreSQL', () => {
  it('a least-privilege runtime role serves requests with sessions, secrets and audit in PostgreSQL; db migrate as the owner, audit verify after', async () => {
    const db = await server.database()
    const { name: runtimeRole, password: runtimePassword } = await server.role()
    const configFile = writeConfig('served', db, runtimeRole, runtimePassword)
    const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), OWNER_PASSWORD: db.password ?? '' }

    // The runtime role may not create tables: start refuses, saying what to run.
    const early = await cli(['db', 'status', '--config', configFile], { env })
    assert.equal(early.code, 1, early.stderr)
    assert.match(early.stdout, new RegExp(`schema version 0 of ${MIGRATIONS.length}\npending: ${MIGRATIONS.length} migration\\(s\\): run keyvalet db migrate`))
    const refused = await cli(['secret', 'list', '--config', configFile], { env })
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /may not apply migrations/)
    assert.match(refused.stderr, /keyvalet db migrate with the role that owns the database/)
    assert.ok(!refused.stderr.includes(runtimePassword))

    const migrated = await cli(['db', 'migrate', '--config', configFile, '--user', db.user, '--password-env', 'OWNER_PASSWORD', '--grant-to', runtimeRole], { env })
    assert.equal(migrated.code, 0, migrated.stderr)
    assert.match(migrated.stdout, new RegExp(`migrated from schema version 0 to ${MIGRATIONS.length}\ngranted the runtime privileges to kv_role_`))
    assert.equal((await cli(['db', 'status', '--config', configFile], { env })).code, 0)

    const kv = await startChildKeyvalet({ configFile, env })
    try {
      assert.equal((await kv.cli(['secret', 'set', 'up-token', '--config', configFile], { input: SECRET })).code, 0)
      const created = await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
      assert.equal(created.code, 0, created.stderr)
      const { key, id } = JSON.parse(created.stdout) as { key: string; id: string }

      const res = await request(`${kv.url}/up/repos?page=1`, { headers: { authorization: `Bearer ${key}` } })
      const body = await res.body.text()
      // What the sandbox got, what the upstream got, what the audit recorded.
      assert.equal(res.statusCode, 200)
      assert.equal((JSON.parse(body) as { url: string }).url, '/repos?page=1')
      assert.ok(!body.includes(SECRET), 'the echoed credential is masked')
      const seen = upstream.received.at(-1)
      assert.equal(seen?.headers.authorization, `Bearer ${SECRET}`)
      assert.ok(!JSON.stringify(seen?.headers).includes(key), 'the task key never reaches the upstream')

      const denied = await request(`${kv.url}/up/repos`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })
      await denied.body.text()
      assert.equal(denied.statusCode, 403)

      const revoked = await kv.cli(['session', 'revoke', id, '--config', configFile])
      assert.equal(revoked.code, 0, revoked.stderr)
      // Revoked by another process (the CLI): this one hears of it by notification, within a second
      // as docs/deploy.md promises (on a loaded machine a request may come first).
      const afterRevoke = await eventually(async () => {
        const res = await request(`${kv.url}/up/repos`, { headers: { authorization: `Bearer ${key}` } })
        await res.body.text()
        return res.statusCode === 200 ? undefined : res
      }, 'the revocation to reach the serving process')
      assert.equal(afterRevoke.statusCode, 401)
      assert.equal(afterRevoke.headers['x-keyvalet-error'], 'task_key_revoked')
    } finally {
      await kv.stop('SIGTERM')
    }

    const records = await auditIn(db)
    assert.deepEqual(records.map((r) => [r.decision, r.error, r.status]), [['allow', null, 200], ['deny', 'policy_denied', 403], ['deny', 'task_key_revoked', 401]])
    assert.equal(records[0]?.path, '/repos')
    assert.ok(!JSON.stringify(records).includes(SECRET))
    const verified = await cli(['audit', 'verify', '--config', configFile], { env })
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, /^ok: 3 records in 1 chain, every chain intact/)

    // keyvalet replay reads the audit from PostgreSQL: a config that makes the rule write turns the allowed GET into a denial.
    const tightened = join(dir, 'tightened.yaml')
    writeFileSync(tightened, readFileSync(configFile, 'utf8').replace('severity: read }', 'severity: write }'))
    const replayed = await cli(['replay', '--config', tightened, '--json'], { env })
    assert.equal(replayed.code, 0, replayed.stderr)
    const report = JSON.parse(replayed.stdout) as { records: number; unchanged: number; not_decided_by_policy: number; changes: { allowed_to_denied: { count: number; examples: { path: string; after: { reason: string } }[] } } }
    assert.deepEqual([report.records, report.changes.allowed_to_denied.count, report.unchanged, report.not_decided_by_policy], [3, 1, 1, 1])
    assert.deepEqual(report.changes.allowed_to_denied.examples.map((e) => [e.path, e.after.reason]), [['/repos', 'severity_exceeds_grant']])

    // The runtime role cannot rewrite the audit log, nor change the schema.
    const asRuntime = postgres({ host: db.host, port: db.port, database: db.database, username: runtimeRole, password: runtimePassword, ssl: { ca: server.caPem, rejectUnauthorized: true }, max: 1, onnotice: () => {} })
    try {
      await assert.rejects(asRuntime`UPDATE audit SET line = '{}'`, /permission denied/)
      await assert.rejects(asRuntime`DELETE FROM audit`, /permission denied/)
      await assert.rejects(asRuntime`CREATE TABLE sneaky (x int)`, /permission denied/)
    } finally {
      await asRuntime.end({ timeout: 5 })
    }
  })

  it('the admin listener on PostgreSQL, as the runtime role: an admin token, a session minted over POST /v1/sessions, used, listed, revoked, the next request refused', async () => {
    const db = await server.database()
    const { name: runtimeRole, password: runtimePassword } = await server.role()
    const configFile = writeConfig('admin', db, runtimeRole, runtimePassword, server.caPem, '{ gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }')
    const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), OWNER_PASSWORD: db.password ?? '' }
    const migrated = await cli(['db', 'migrate', '--config', configFile, '--user', db.user, '--password-env', 'OWNER_PASSWORD', '--grant-to', runtimeRole], { env })
    assert.equal(migrated.code, 0, migrated.stderr)

    const kv = await startChildKeyvalet({ configFile, env })
    const received = upstream.received.length
    let key = ''
    let token = ''
    const tokens: string[] = []
    try {
      assert.equal((await kv.cli(['secret', 'set', 'up-token', '--config', configFile], { input: SECRET })).code, 0)
      const minted = await kv.cli(['admin', 'token', 'create', '--name', 'orchestrator', '--role', 'operator', '--json', '--config', configFile])
      assert.equal(minted.code, 0, minted.stderr)
      token = (JSON.parse(minted.stdout) as { token: string }).token
      tokens.push(token)
      let adminUrl: string | undefined
      for (let i = 0; i < 200 && adminUrl === undefined; i++) {
        adminUrl = /admin API listening on (http:\/\/\S+)/.exec(kv.stdout())?.[1]
        if (adminUrl === undefined) await new Promise((r) => setTimeout(r, 50))
      }
      assert.ok(adminUrl !== undefined, kv.stdout())
      const admin = async (method: string, path: string, body?: unknown) => {
        const res = await request(`${adminUrl}${path}`, {
          method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        })
        const text = await res.body.text()
        return { status: res.statusCode, text, json: JSON.parse(text) as any }
      }

      const created = await admin('POST', '/v1/sessions', { agent: 'bot', user: 'alice', workspace: 'acme', task: 'T-1', grant: ['up:read'], ttl: '10m' })
      assert.equal(created.status, 201, created.text)
      key = created.json.key as string
      const id = created.json.session.id as string
      const res = await request(`${kv.url}/up/issues/1`, { headers: { authorization: `Bearer ${key}` } })
      const body = await res.body.text()
      assert.equal(res.statusCode, 200)
      assert.ok(!body.includes(SECRET), 'the echoed credential is masked')
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)

      const listed = await admin('GET', '/v1/sessions?workspace=acme&limit=1')
      assert.equal(listed.status, 200, listed.text)
      assert.deepEqual(listed.json.sessions.map((s: { id: string; state: string }) => [s.id, s.state]), [[id, 'active']])
      const revoked = await admin('POST', `/v1/sessions/${id}/revoke`)
      assert.equal(revoked.status, 200, revoked.text)
      assert.equal(revoked.json.state, 'revoked')
      const refused = await request(`${kv.url}/up/issues/2`, { headers: { authorization: `Bearer ${key}` } })
      await refused.body.text()
      assert.equal(refused.statusCode, 401)
      assert.equal(refused.headers['x-keyvalet-error'], 'task_key_revoked')
      assert.equal(upstream.received.length, received + 1, 'the revoked key reached nothing')

      // The audit, queried over the admin API from the PostgreSQL store: by agent, newest first.
      const auditor = await kv.cli(['admin', 'token', 'create', '--name', 'reader', '--role', 'auditor', '--json', '--config', configFile])
      token = (JSON.parse(auditor.stdout) as { token: string }).token
      tokens.push(token)
      const queried = await admin('GET', '/v1/audit?agent=bot&limit=10')
      assert.equal(queried.status, 200, queried.text)
      assert.deepEqual(queried.json.records.map((r: AuditRecord) => [r.mode, r.decision, r.status]), [['gateway', 'deny', 401], ['gateway', 'allow', 200]])
    } finally {
      await kv.stop('SIGTERM')
    }

    const records = await auditIn(db)
    assert.deepEqual(records.map((r) => [r.mode === 'admin' ? r.action : r.mode, r.decision, r.status]), [
      ['session.create', 'allow', 201], ['gateway', 'allow', 200], ['session.list', 'allow', 200], ['session.revoke', 'allow', 200], ['gateway', 'deny', 401], ['audit.query', 'allow', 200],
    ])
    for (const value of [key, ...tokens, SECRET]) assert.ok(!JSON.stringify(records).includes(value), 'no record holds a key, a token or the secret')
    const verified = await cli(['audit', 'verify', '--config', configFile], { env })
    assert.equal(verified.code, 0, verified.stderr)
  })

  it('refuses a server whose certificate the configured CA did not sign, before anything is sent', async () => {
    const db = await server.database()
    const otherCa = makeTestPki().caCert
    const configFile = writeConfig('wrong-ca', db, db.user, db.password ?? '', otherCa)
    const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
    const out = await cli(['db', 'status', '--config', configFile], { env })
    assert.notEqual(out.code, 0)
    assert.match(out.stderr, /cannot use the PostgreSQL store postgres:\/\/postgres@127\.0\.0\.1:\d+\/kv_test_\w+ \(tls verify-full\): .*certificate/)
    assert.ok(!out.stderr.includes(db.password ?? 'x'), 'the password is never shown')
  })

  it('refuses a server whose certificate does not name the host in store.url', { skip: process.env.KEYVALET_TEST_POSTGRES_URL ? 'an outside server' : false }, async () => {
    const db = await server.database()
    // The test server also listens on 127.0.0.2; its certificate names 127.0.0.1 and localhost only.
    const configFile = writeConfig('wrong-name', { ...db, host: '127.0.0.2' }, db.user, db.password ?? '')
    const out = await cli(['db', 'status', '--config', configFile], { env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') } })
    assert.notEqual(out.code, 0)
    assert.match(out.stderr, /cannot use the PostgreSQL store postgres:\/\/postgres@127\.0\.0\.2:\d+\/kv_test_\w+ \(tls verify-full\): .*(IP: 127\.0\.0\.2 is not in the cert's list|altnames)/)
    assert.ok(!out.stderr.includes(db.password ?? 'x'))
  })

  it('db copy moves a SQLite installation, audit chain included: audit verify passes and its task keys keep working', async () => {
    const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
${connectors()}`)
    const db = await server.database()
    try {
      await kv.setSecret('up-token', SECRET)
      const { key } = await kv.mintKey(['up:read'])
      const { id: tokenId } = await kv.adminToken('operator', { name: 'orchestrator' })
      for (const path of ['/a', '/b']) {
        const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
        await res.body.text()
        assert.equal(res.statusCode, 200)
      }
      const before = await kv.audit()
      assert.equal(before.length, 2)
      writeFileSync(join(dir, 'copy-ca.pem'), server.caPem ?? '')
      const env = { KEYVALET_MASTER_KEY: kv.masterKey, TARGET_PASSWORD: db.password ?? '' }
      const copied = await cli([
        'db', 'copy', '--config', kv.configFile, '--from', `sqlite:${join(kv.runtime.config.dataDir, 'keyvalet.db')}`,
        '--to', `postgres://${db.user}@${db.host}:${db.port}/${db.database}`, '--password-env', 'TARGET_PASSWORD', '--ca-file', join(dir, 'copy-ca.pem'),
      ], { env })
      assert.equal(copied.code, 0, copied.stderr)
      assert.match(copied.stdout, /^copied \d+ secrets, 1 sessions, 1 admin tokens, 0 pushed policies and 2 audit records from /)
      assert.deepEqual(await auditIn(db), before)
      const copiedStore = await PostgresStore.open(db, { max: 1 })
      try {
        assert.deepEqual(await copiedStore.adminTokens.listStored(), await kv.runtime.store.adminTokens.listStored())
        assert.deepEqual((await copiedStore.adminTokens.list()).map((t) => [t.id, t.name]), [[tokenId, 'orchestrator']])
        // The copied records are found by what they record (the facets, filled by the copy).
        const found = await copiedStore.audit.query({ connector: 'up', decision: 'allow', agent: before[0]?.agent as string }, { order: 'desc', limit: 10 })
        assert.deepEqual(found.map((r) => r.seq), [2, 1])
      } finally {
        await copiedStore.close()
      }

      const configFile = writeConfig('copied', db, db.user, db.password ?? '')
      const verified = await cli(['audit', 'verify', '--config', configFile], { env })
      assert.equal(verified.code, 0, verified.stderr)
      assert.match(verified.stdout, /^ok: 2 records in 1 chain, every chain intact/)
      const again = await cli(['db', 'copy', '--config', configFile, '--from', `sqlite:${join(kv.runtime.config.dataDir, 'keyvalet.db')}`], { env })
      assert.equal(again.code, 1)
      assert.match(again.stderr, /the destination store is not empty/)

      const moved = await startChildKeyvalet({ configFile, env })
      try {
        const res = await request(`${moved.url}/up/after-move`, { headers: { authorization: `Bearer ${key}` } })
        await res.body.text()
        assert.equal(res.statusCode, 200)
        assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      } finally {
        await moved.stop('SIGTERM')
      }
      const records = await auditIn(db)
      assert.equal(records.length, 3)
      assert.equal(records[2]?.path, '/after-move')
      assert.equal((await cli(['audit', 'verify', '--config', configFile], { env })).code, 0)
    } finally {
      await kv.close()
    }
  })
})
