import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { inside, startChildKeyvalet, tmpfsUnavailable } from '../helpers/child-keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

const SECRET = 'up-secret-value-0123456789abcdef'
const unavailable = tmpfsUnavailable()
// In CI the test must run: a machine that cannot mount is then a failure, not a skip.
const skip = unavailable !== undefined && process.env.CI !== 'true' ? `needs a tmpfs in a private mount namespace: ${unavailable}` : false

it('a full data folder: nothing is forwarded or answered unaudited (503 audit_unavailable); keyvalet recovers by itself when space returns', { skip }, async () => {
  let held: ServerResponse | undefined
  const upstream = await startUpstream({
    handler: (req, res) => {
      if (req.url === '/slow') held = res
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('fine')
    },
  })
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-diskfull-'))
  const dataDir = join(dir, 'data')
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${dataDir}
audit: { reserve_bytes: 1048576 }
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: /**, severity: read }
`)
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  mkdirSync(dataDir)
  const kv = await startChildKeyvalet({ configFile, env, tmpfs: { dir: dataDir, size: '8m' } })
  const fill = inside(kv.pid, join(dataDir, 'fill'))
  try {
    assert.equal((await kv.cli(['secret', 'set', 'up-token', '--config', configFile], { input: SECRET })).code, 0)
    const created = await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
    assert.equal(created.code, 0, created.stderr)
    const { key } = JSON.parse(created.stdout) as { key: string }
    const get = async (path: string, authorization?: string) => {
      const res = await request(`${kv.url}/up${path}`, { headers: authorization === undefined ? {} : { authorization } })
      return { status: res.statusCode, error: res.headers['x-keyvalet-error'], body: await res.body.text() }
    }
    assert.equal((await get('/ok', `Bearer ${key}`)).status, 200)

    // A request in flight when the disk fills: admitted while the audit could take it, so it must end with its record.
    const slow = request(`${kv.url}/up/slow`, { headers: { authorization: `Bearer ${key}` } })
    for (let i = 0; i < 500 && held === undefined; i++) await new Promise((r) => setTimeout(r, 10))
    assert.ok(held !== undefined, 'the slow request reached the upstream')

    // Fill the data folder to the last byte (bounded: the tmpfs is 8 MiB).
    const fd = openSync(fill, 'w')
    try {
      for (let i = 0; i < 200; i++) writeSync(fd, Buffer.alloc(64 * 1024))
      assert.fail('the tmpfs never filled up')
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC')
    } finally {
      closeSync(fd)
    }
    const forwardedBefore = upstream.received.length

    // Bounded wait until keyvalet knows; these probes carry no task key, so nothing is forwarded meanwhile.
    let probe = await get('/ok')
    for (let i = 0; i < 100 && probe.status !== 503; i++) {
      await new Promise((r) => setTimeout(r, 100))
      probe = await get('/ok')
    }
    assert.equal(probe.status, 503)
    for (const attempt of [
      () => get('/ok', `Bearer ${key}`), // allowed
      () => get('/ok'), // no task key
      () => get('/ok', 'Bearer kv_task_forged'), // a malformed key
      () => get('/../etc', `Bearer ${key}`), // an ambiguous path
    ]) {
      for (let i = 0; i < 3; i++) {
        const answer = await attempt()
        assert.equal(answer.status, 503)
        assert.equal(answer.error, 'audit_unavailable')
        assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'audit_unavailable')
        assert.ok(!answer.body.includes(SECRET))
      }
    }
    assert.equal(upstream.received.length, forwardedBefore, 'nothing reached the upstream while the audit was unavailable')

    // The request in flight completes, whole, with its record.
    held.writeHead(200, { 'content-type': 'text/plain' }).end('slow answer')
    const slowRes = await slow
    assert.equal(slowRes.statusCode, 200)
    assert.equal(await slowRes.body.text(), 'slow answer')

    // Space returns: keyvalet recovers by itself.
    unlinkSync(fill)
    let after = await get('/ok', `Bearer ${key}`)
    for (let i = 0; i < 100 && after.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100))
      after = await get('/ok', `Bearer ${key}`)
    }
    assert.equal(after.status, 200)
    assert.equal(after.body, 'fine')
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)

    const tail = await kv.cli(['audit', 'tail', '-n', '1000', '--config', configFile])
    assert.equal(tail.code, 0, tail.stderr)
    const records = tail.stdout.trim().split('\n').map((line) => JSON.parse(line) as AuditRecord)
    const allowed = records.filter((r) => r.decision === 'allow')
    assert.deepEqual(allowed.map((r) => [r.path, r.status, r.credential]), [['/ok', 200, 'up-token'], ['/slow', 200, 'up-token'], ['/ok', 200, 'up-token']])
    // The refusals answered while the audit was unavailable have no record each; one record says how many there were.
    const outage = records.filter((r) => r.error === 'audit_unavailable')
    assert.equal(outage.length, 1, JSON.stringify(outage))
    assert.equal(outage[0]?.mode, 'keyvalet')
    const refused = (outage[0]?.detail as { refused?: number } | undefined)?.refused ?? 0
    assert.ok(refused >= 13, `the outage record counts the refused requests (${refused})`)
    assert.ok(!tail.stdout.includes(SECRET) && !tail.stdout.includes(key))
    const verified = await kv.cli(['audit', 'verify', '--config', configFile])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /^ok: /)
  } finally {
    held?.destroy()
    await kv.stop()
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
