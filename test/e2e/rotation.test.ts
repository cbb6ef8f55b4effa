import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { main } from '../../src/cli/main.ts'
import { parseConfig } from '../../src/config/load.ts'
import { openRuntime } from '../../src/runtime.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** The real CLI in this process (its own store connection to the same database), output captured. */
async function keyvalet(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdin = new PassThrough()
  stdin.end(input)
  let stdout = ''
  let stderr = ''
  const sink = (add: (s: string) => void) => Object.assign(new PassThrough(), { write: (c: string | Buffer) => (add(String(c)), true) })
  const code = await main(args, { stdin, stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), env, cwd: process.cwd() })
  return { code, stdout, stderr }
}

/** `total` requests, `concurrency` at a time, while `during` runs; every answer's status and the credential the upstream saw. */
async function load<T>(kv: TestKeyvalet, key: string, total: number, concurrency: number, during: () => Promise<T>): Promise<{ statuses: number[]; outcome: T }> {
  const statuses: number[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++
      const res = await request(`${kv.url}/api/items`, { headers: { authorization: `Bearer ${key}` } })
      await res.body.dump()
      statuses.push(res.statusCode)
    }
  }
  const [outcome] = await Promise.all([during(), ...Array.from({ length: concurrency }, worker)] as const)
  return { statuses, outcome }
}

describe('rotation while serving: secret set and the master key', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string
  const config = (url: string) => `version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  api:
    upstream: ${url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-token, inject: bearer }
    rules: [{ id: list, methods: [GET], path: /items, severity: read }]
`

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream.url), { keyFile: true })
    await kv.setSecret('api-token', 'token-v1-aaaaaaaaaaaa')
    await kv.setSecret('other', 'another-secret-value')
    key = (await kv.mintKey(['api:read'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  it('secret set on an existing name under load: no request fails, and every request after it carries the new value', async () => {
    const seenBefore = upstream.received.length
    const { statuses, outcome } = await load(kv, key, 300, 8, async () => {
      await new Promise((r) => setTimeout(r, 20))
      return keyvalet(['secret', 'set', 'api-token', '--config', kv.configFile], {}, 'token-v2-bbbbbbbbbbbb\n')
    })
    assert.equal(outcome.code, 0, outcome.stderr)
    assert.equal(statuses.length, 300)
    assert.deepEqual([...new Set(statuses)], [200], 'no request failed during the replacement')
    const sent = upstream.received.slice(seenBefore).map((r) => r.headers.authorization)
    assert.ok(sent.every((a) => a === 'Bearer token-v1-aaaaaaaaaaaa' || a === 'Bearer token-v2-bbbbbbbbbbbb'), 'only whole values were ever sent')
    const firstV2 = sent.indexOf('Bearer token-v2-bbbbbbbbbbbb')
    assert.ok(firstV2 >= 0, 'the new value was used')
    // The sandbox's answers never carry either value (the echo upstream reflects the header back).
    const after = await request(`${kv.url}/api/items`, { headers: { authorization: `Bearer ${key}` } })
    const echoed = await after.body.text()
    assert.equal(upstream.received.at(-1)?.headers.authorization, 'Bearer token-v2-bbbbbbbbbbbb')
    assert.ok(!echoed.includes('token-v2-bbbbbbbbbbbb'), 'the value is masked in what the sandbox receives')
    const records = (await kv.audit()).filter((r) => r.connector === 'api')
    assert.ok(records.length >= 301)
    assert.ok(records.slice(-301).every((r) => r.decision === 'allow' && r.credential === 'api-token'))
  })

  it('vault rotate-master-key while serving: no request fails, every record is re-wrapped, the old key opens nothing', async () => {
    const keyFile = join(kv.dir, '.keyvalet', 'master.key')
    const oldKey = readFileSync(keyFile, 'utf8').trim()
    const oldId = kv.runtime.vault.keyId
    const { statuses, outcome } = await load(kv, key, 400, 8, async () => {
      await new Promise((r) => setTimeout(r, 20))
      return keyvalet(['vault', 'rotate-master-key', '--config', kv.configFile], {})
    })
    assert.equal(outcome.code, 0, outcome.stderr)
    assert.match(outcome.stdout, new RegExp(`master key rotated: ${oldId} → [0-9a-f]{16}; \\d+ record\\(s\\) re-wrapped`))
    assert.deepEqual([...new Set(statuses)], [200], 'no request failed during the rotation')
    assert.equal(upstream.received.at(-1)?.headers.authorization, 'Bearer token-v2-bbbbbbbbbbbb')

    const lines = readFileSync(keyFile, 'utf8').trim().split('\n')
    assert.equal(lines.length, 1, 'the key file holds only the new key')
    assert.notEqual(lines[0], oldKey)
    const records = await kv.runtime.vault.list()
    const newId = kv.runtime.vault.keyId
    assert.notEqual(newId, oldId, 'the running vault follows the key file')
    assert.ok(records.length >= 3, 'api-token, other, and keyvalet.audit-key')
    assert.deepEqual([...new Set(records.map((r) => r.keyId))], [newId])

    // A new process with only the new key opens everything and the audit chain still verifies;
    // the old key opens nothing.
    const status = await keyvalet(['vault', 'status', '--config', kv.configFile], {})
    assert.match(status.stdout, new RegExp(`master key ${newId}.*\\n  ${records.length} record\\(s\\) sealed under ${newId}`))
    const verify = await keyvalet(['audit', 'verify', '--config', kv.configFile], {})
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
    const parsed = parseConfig(readFileSync(kv.configFile, 'utf8'), kv.configFile)
    const stale = await openRuntime(parsed, { env: { KEYVALET_MASTER_KEY: oldKey }, createMasterKey: false })
    try {
      await assert.rejects(stale.vault.open('api-token'), (err: Error & { detail?: { why?: string } }) => err.detail?.why === 'master_key_mismatch')
    } finally {
      await stale.close()
    }
    // A write after the rotation is sealed under the new key, and requests go on using it.
    await kv.setSecret('api-token', 'token-v3-cccccccccccc')
    assert.equal((await kv.runtime.vault.list()).find((r) => r.name === 'api-token')?.keyId, newId)
    const res = await request(`${kv.url}/api/items`, { headers: { authorization: `Bearer ${key}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 200)
    assert.equal(upstream.received.at(-1)?.headers.authorization, 'Bearer token-v3-cccccccccccc')
    const audit = await kv.audit()
    assert.equal(audit.at(-1)?.decision, 'allow')
    assert.ok(audit.filter((r) => r.connector === 'api').slice(-401).every((r) => r.decision === 'allow'))
  })

  it('a key file left holding a second key that seals nothing (a rotation stopped while staging): the current key is kept, the other dropped, and it says no rotation happened', async () => {
    const keyFile = join(kv.dir, '.keyvalet', 'master.key')
    const current = readFileSync(keyFile, 'utf8').trim().split('\n')
    assert.equal(current.length, 1)
    const currentId = kv.runtime.vault.keyId
    // What a rotation killed after staging leaves: the current key, then the new one, nothing sealed under it.
    writeFileSync(keyFile, `${current[0]}\n${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    const out = await keyvalet(['vault', 'rotate-master-key', '--config', kv.configFile], {})
    assert.equal(out.code, 0, out.stderr)
    assert.match(out.stdout, new RegExp(`master key ${currentId} kept: nothing was sealed under the other key .*no rotation happened: run keyvalet vault rotate-master-key again`))
    assert.doesNotMatch(out.stdout, /master key rotated/)
    assert.deepEqual(readFileSync(keyFile, 'utf8').trim().split('\n'), current, 'the key file holds the current key alone')
    assert.deepEqual([...new Set((await kv.runtime.vault.list()).map((r) => r.keyId))], [currentId])
    const res = await request(`${kv.url}/api/items`, { headers: { authorization: `Bearer ${key}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 200)
  })

  it('refuses to rotate a key that comes from the environment, with what to do instead', async () => {
    const out = await keyvalet(['vault', 'rotate-master-key', '--config', kv.configFile], { KEYVALET_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') })
    assert.equal(out.code, 1)
    assert.match(out.stderr, /comes from KEYVALET_MASTER_KEY.*\nhint: put the key in a file/)
  })
})
