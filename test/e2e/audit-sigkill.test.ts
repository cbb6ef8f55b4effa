import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { StoreLocation } from '../../src/store/location.ts'
import { openStore } from '../../src/store/open.ts'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { cli } from '../helpers/cli.ts'
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** Clients sending at once, each one request after another. */
const CLIENTS = 8
/** Responses acknowledged before the kill (bounded: the load also stops after LOAD_MS). */
const BEFORE_KILL = 150
const LOAD_MS = 15_000

let upstream: Upstream
let dir: string
before(async () => {
  upstream = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'keyvalet-sigkill-'))
})
after(async () => {
  await upstream?.close()
  rmSync(dir, { recursive: true, force: true })
})

function writeConfig(name: string, store: string): string {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${join(dir, name)}
${store}
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`)
  return file
}

/**
 * A real `keyvalet start` under load from CLIENTS concurrent undici clients, each request to a
 * path of its own, killed with SIGKILL mid-load: every response a client received whole has its
 * record in the store (by the request id keyvalet answered with, and its path), and the chain
 * left behind verifies.
 */
async function killUnderLoad(configFile: string, env: NodeJS.ProcessEnv, location: StoreLocation): Promise<void> {
  const kv = await startChildKeyvalet({ configFile, env })
  const acknowledged: { id: string; path: string }[] = []
  const agent = new Agent({ connections: CLIENTS })
  try {
    const created = await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
    assert.equal(created.code, 0, created.stderr)
    const { key } = JSON.parse(created.stdout) as { key: string }
    let killed = false
    const kill = (): void => {
      killed = true
      process.kill(kv.pid, 'SIGKILL')
    }
    const deadline = Date.now() + LOAD_MS
    const client = async (c: number): Promise<void> => {
      for (let i = 0; !killed && Date.now() < deadline; i++) {
        const path = `/load/${c}-${i}`
        try {
          const res = await request(`${kv.url}/up${path}`, { dispatcher: agent, headers: { authorization: `Bearer ${key}` } })
          await res.body.text()
          assert.equal(res.statusCode, 200)
          acknowledged.push({ id: String(res.headers['x-keyvalet-request-id']), path })
          // At once, in the turn the response completed: the records still owed are then the newest.
          if (acknowledged.length === BEFORE_KILL) kill()
        } catch (err) {
          if (!killed) throw err
        }
      }
    }
    const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)))
    while (!killed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    if (!killed) kill()
    assert.equal((await kv.exited).signal, 'SIGKILL')
    await load
  } finally {
    await kv.stop('SIGKILL')
    await agent.close()
  }
  assert.ok(acknowledged.length >= BEFORE_KILL, `${acknowledged.length} responses before the kill`)

  const store = await openStore(location)
  let records: AuditRecord[]
  try {
    records = (await store.audit.read(0, 1_000_000)).map((row) => JSON.parse(row.line) as AuditRecord)
  } finally {
    await store.close()
  }
  const byId = new Map(records.map((r) => [r.request_id, r]))
  const missing = acknowledged.filter((a) => byId.get(a.id)?.path !== a.path)
  assert.deepEqual(missing, [], `acknowledged without their record (of ${acknowledged.length})`)
  assert.ok(acknowledged.every((a) => byId.get(a.id)?.status === 200))
  // What the upstream saw: every acknowledged request, with keyvalet's request id forwarded or not, by its path.
  const seen = new Set(upstream.received.map((r) => r.url))
  assert.ok(acknowledged.every((a) => seen.has(a.path)))
  const verified = await cli(['audit', 'verify', '--config', configFile], { env })
  assert.equal(verified.code, 0, verified.stdout + verified.stderr)
}

describe('SIGKILL under load: no acknowledged request loses its record', () => {
  it('on SQLite', async () => {
    const configFile = writeConfig('sqlite', '')
    await killUnderLoad(configFile, { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }, { kind: 'sqlite', path: join(dir, 'sqlite', 'keyvalet.db'), fsync: true })
  })

  describe('on PostgreSQL', () => {
    let server: TestPostgres
    before(async () => {
      server = await startTestPostgres()
    })
    after(() => server?.stop())

    it('every acknowledged response has its record in the server', async () => {
      const db = await server.database()
      writeFileSync(join(dir, 'pg.pw'), `${db.password ?? ''}\n`, { mode: 0o600 })
      if (server.caPem !== undefined) writeFileSync(join(dir, 'pg-ca.pem'), server.caPem)
      const tls = db.tls.mode === 'disable' ? '{ mode: disable }' : server.caPem === undefined ? '{}' : '{ ca_file: pg-ca.pem }'
      const configFile = writeConfig('pg', `store:\n  url: postgres://${db.user}@${db.host}:${db.port}/${db.database}\n  password_file: pg.pw\n  tls: ${tls}`)
      await killUnderLoad(configFile, { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }, db)
    })
  })
})
