import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { loadMasterKey } from '../../src/vault/master-key.ts'
import { request } from 'undici'
import { main } from '../../src/cli/main.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres, storeBlock } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** What the issue asks: a change through one instance takes effect on every other within this. */
const PROPAGATION_LIMIT_MS = 1000

let server: TestPostgres
let upstream: Upstream
let fleet: TestKeyvalet[] = []
/** The data folder the three instances share (a volume every replica mounts): the master key file is in it. */
let shared = ''

before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  const db = await server.database()
  const store = storeBlock(server, db)
  shared = mkdtempSync(join(tmpdir(), 'keyvalet-fleet-key-'))
  const config = `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${shared}
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
  for (let i = 0; i < 3; i++) fleet.push(await startKeyvalet(config, { files, masterKey, keyFile: true }))
})
after(async () => {
  for (const kv of fleet) await kv.close()
  fleet = []
  await upstream?.close()
  await server?.stop()
  if (shared !== '') rmSync(shared, { recursive: true, force: true })
})

function instance(i: number): TestKeyvalet {
  const kv = fleet[i]
  if (kv === undefined) throw new Error(`no instance ${i}`)
  return kv
}

/** The real CLI in this process (its own store connection), output captured. */
async function keyvalet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdin = new PassThrough()
  stdin.end('')
  let stdout = ''
  let stderr = ''
  const sink = (add: (s: string) => void) => Object.assign(new PassThrough(), { write: (c: string | Buffer) => (add(String(c)), true) })
  const code = await main(args, { stdin, stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), env: {}, cwd: process.cwd() })
  return { code, stdout, stderr }
}

async function proxied(kv: TestKeyvalet, key: string, path: string) {
  const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
  await res.body.dump()
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'], sent: upstream.received.at(-1) }
}

/** Asks `check` again (bounded: every 5 ms, for at most 3 × the limit) until it holds; the time it took from `since`. */
async function within(since: number, check: () => Promise<{ ok: boolean; last: unknown }>): Promise<number> {
  let last: unknown
  for (let i = 0; i < (3 * PROPAGATION_LIMIT_MS) / 5; i++) {
    const result = await check()
    if (result.ok) return performance.now() - since
    last = result.last
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  assert.fail(`not seen within ${3 * PROPAGATION_LIMIT_MS} ms; last answer: ${JSON.stringify(last)}`)
}

describe('master-key rotation in a fleet of three instances on one PostgreSQL store, one key file on a shared volume', () => {
  it('rotated through one instance: secrets keep opening on all three, a secret set after it opens on the others within 1 s, a rotated value is sent everywhere within 1 s', async () => {
    await instance(0).setSecret('up-token', 'token-v1-aaaaaaaaaaaa')
    const { key } = await instance(0).mintKey(['up:read'])
    for (const i of [0, 1, 2]) assert.equal((await proxied(instance(i), key, `/before-${i}`)).status, 200)
    const oldId = instance(0).runtime.vault.keyId

    const rotated = await keyvalet(['vault', 'rotate-master-key', '--config', instance(0).configFile])
    assert.equal(rotated.code, 0, rotated.stderr)
    const lines = readFileSync(join(shared, 'master.key'), 'utf8').trim().split('\n')
    assert.equal(lines.length, 1, 'the shared key file holds only the new key')
    const records = await instance(0).runtime.vault.list()
    const newIds = new Set(records.map((r) => r.keyId))
    assert.equal(newIds.size, 1)
    assert.ok(!newIds.has(oldId), 'every record is re-wrapped under the new key')

    // Every instance still opens the (re-wrapped) secret: each one follows the key file.
    for (const i of [0, 1, 2]) {
      const answer = await proxied(instance(i), key, `/after-rotation-${i}`)
      assert.equal(answer.status, 200, `instance ${i}: ${String(answer.error)}`)
      assert.equal(answer.sent?.headers.authorization, 'Bearer token-v1-aaaaaaaaaaaa')
    }

    // A secret written through instance 1 after the rotation (sealed under the new key) and a new value through instance 2.
    await instance(1).runtime.vault.put('up-token', Buffer.from('token-v2-bbbbbbbbbbbb'))
    let since = performance.now()
    for (const i of [0, 2]) {
      const took = await within(since, async () => {
        const answer = await proxied(instance(i), key, `/v2-${i}`)
        return { ok: answer.status === 200 && answer.sent?.headers.authorization === 'Bearer token-v2-bbbbbbbbbbbb', last: [answer.status, answer.error] }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} sent the value set through instance 1 ${Math.round(took)} ms after`)
    }
    await instance(2).setSecret('up-token', 'token-v3-cccccccccccc')
    since = performance.now()
    for (const i of [0, 1]) {
      const took = await within(since, async () => {
        const answer = await proxied(instance(i), key, `/v3-${i}`)
        return { ok: answer.status === 200 && answer.sent?.headers.authorization === 'Bearer token-v3-cccccccccccc', last: [answer.status, answer.error] }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} sent the value set through instance 2 ${Math.round(took)} ms after`)
    }
    for (const kv of fleet) assert.notEqual(kv.runtime.vault.keyId, oldId, 'every instance seals under the new key now')

    // The audit: every request allowed, none refused, and no value in any record.
    const audit = await instance(0).audit()
    const requests = audit.filter((r) => r.connector === 'up')
    assert.ok(requests.length >= 9)
    assert.ok(requests.every((r) => r.decision === 'allow'), JSON.stringify(requests.filter((r) => r.decision !== 'allow')))
    for (const r of audit) assert.ok(!/token-v\d/.test(JSON.stringify(r)))
  })
})

describe('master-key rotation in a fleet of three instances on one PostgreSQL store, each with its own copy of the key file', () => {
  let own: TestKeyvalet[] = []
  const at = (i: number): TestKeyvalet => {
    const kv = own[i]
    if (kv === undefined) throw new Error(`no instance ${i}`)
    return kv
  }
  const keyFileOf = (i: number) => join(at(i).dir, '.keyvalet', 'master.key')
  const keyLines = (i: number) => readFileSync(keyFileOf(i), 'utf8').trim().split('\n')
  const keyIdOf = (base64: string) => loadMasterKey({ env: { KEYVALET_MASTER_KEY: base64 }, dataDir: '/nonexistent', create: false }).keyId

  before(async () => {
    const db = await server.database()
    const store = storeBlock(server, db)
    // No data_dir: each instance's <data_dir>/master.key is in its own folder (a Secret copied into each pod).
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
    const masterKey = randomBytes(32).toString('base64')
    for (let i = 0; i < 3; i++) own.push(await startKeyvalet(config, { files: store.files, masterKey, keyFile: true, admin: {} }))
  })
  after(async () => {
    for (const kv of own) await kv.close()
    own = []
  })

  async function fleetView() {
    const { token } = await at(2).adminToken('auditor')
    const res = await request(`${at(2).adminUrl}/v1/fleet`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.statusCode, 200)
    return (await res.body.json()) as { master_keys_consistent: boolean; instances: { instance: string; master_key_ids: string[] }[] }
  }

  it('refused while the others lack the new key: names them, re-wraps nothing, the key file is as before; staged everywhere it passes; --force overrides with a warning', async () => {
    await at(0).setSecret('up-token', 'token-own-aaaaaaaaaaaa')
    const { key } = await at(0).mintKey(['up:read'])
    const oldId = at(0).runtime.vault.keyId
    const original = readFileSync(keyFileOf(0), 'utf8')
    const agreed = await fleetView()
    assert.equal(agreed.master_keys_consistent, true)
    assert.deepEqual(agreed.instances.map((i) => i.master_key_ids), [[oldId], [oldId], [oldId]])

    // Rotating through instance 0's configuration: instance 0 reads the CLI's key file and
    // follows it; instances 1 and 2 never see the new key.
    const refused = await keyvalet(['vault', 'rotate-master-key', '--wait', '3', '--config', at(0).configFile])
    assert.equal(refused.code, 1, refused.stdout)
    assert.match(refused.stderr, /not rotating: 2 running instance\(s\) do not hold the new master key [0-9a-f]{16}/)
    for (const i of [1, 2]) {
      const { instance } = at(i).auditWriter
      assert.match(refused.stderr, new RegExp(`${instance} on [^ ]+ \\(pid ${process.pid}\\): holds master key ${oldId}, not [0-9a-f]{16}`))
    }
    assert.ok(!refused.stderr.includes(at(0).auditWriter.instance), 'the instance sharing the CLI\'s key file holds the staged key')
    assert.match(refused.stderr, /stage the new key in every instance's key file first/)
    assert.equal(readFileSync(keyFileOf(0), 'utf8'), original, 'the key file holds only the current key again')
    assert.deepEqual([...new Set((await at(0).runtime.vault.list()).map((r) => r.keyId))], [oldId], 'nothing re-wrapped')
    for (const kv of own) assert.equal(kv.runtime.vault.keyId, oldId, 'every instance still seals under the old key')
    for (const i of [0, 1, 2]) {
      const answer = await proxied(at(i), key, `/after-refusal-${i}`)
      assert.equal(answer.status, 200, `instance ${i}: ${String(answer.error)}`)
      assert.equal(answer.sent?.headers.authorization, 'Bearer token-own-aaaaaaaaaaaa')
    }

    // Staged as docs/deploy.md says: every instance's file holds the new key, then the old one.
    const next = randomBytes(32).toString('base64')
    const nextId = keyIdOf(next)
    for (const i of [0, 1, 2]) writeFileSync(keyFileOf(i), `${next}\n${at(i).masterKey}\n`, { mode: 0o600 })
    const staged = await keyvalet(['vault', 'rotate-master-key', '--config', at(0).configFile])
    assert.equal(staged.code, 0, staged.stderr)
    assert.match(staged.stdout, new RegExp(`master key rotated: ${oldId} → ${nextId}`))
    assert.deepEqual([...new Set((await at(0).runtime.vault.list()).map((r) => r.keyId))], [nextId], 'every record re-wrapped')
    assert.deepEqual(keyLines(0), [next])
    for (const i of [0, 1, 2]) {
      const answer = await proxied(at(i), key, `/after-staged-${i}`)
      assert.equal(answer.status, 200, `instance ${i}: ${String(answer.error)}`)
      assert.equal(answer.sent?.headers.authorization, 'Bearer token-own-aaaaaaaaaaaa')
    }
    const view = await fleetView()
    assert.equal(view.master_keys_consistent, true)
    for (const i of view.instances) assert.equal(i.master_key_ids[0], nextId)

    // Another rotation through instance 0 alone, forced: the others are named in a warning and cannot open the re-wrapped secret.
    const forced = await keyvalet(['vault', 'rotate-master-key', '--wait', '2', '--force', '--config', at(0).configFile])
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stderr, /warning: --force: re-wrapping although 2 running instance\(s\) do not hold the new master key/)
    for (const i of [1, 2]) assert.ok(forced.stderr.includes(at(i).auditWriter.instance))
    const broken = await proxied(at(1), key, '/after-forced-1')
    assert.equal(broken.status, 502)
    assert.equal(broken.error, 'credential_unavailable')
    assert.equal((await proxied(at(0), key, '/after-forced-0')).status, 200)
    const split = await fleetView()
    assert.equal(split.master_keys_consistent, false)

    // The audit: the requests above, allowed until the forced rotation left instance 1 behind; no value anywhere.
    const audit = await at(0).audit()
    const requests = audit.filter((r) => r.connector === 'up')
    assert.equal(requests.filter((r) => r.decision === 'allow').length, 7)
    assert.deepEqual(requests.filter((r) => r.decision !== 'allow').map((r) => [r.instance, r.error]), [[at(1).auditWriter.instance, 'credential_unavailable']])
    for (const r of audit) assert.ok(!/token-own/.test(JSON.stringify(r)))
  })
})
