import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { cli } from '../helpers/cli.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let upstream: Upstream
let dir: string
before(async () => {
  upstream = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'keyvalet-workers-'))
})
after(async () => {
  await upstream?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

it('keyvalet start --workers 2 on SQLite: requests spread over both (two audit chains), a revocation is seen by both, a dead worker comes back, SIGHUP reloads both, SIGTERM stops all; verify passes', async () => {
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${join(dir, 'data')}
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`)
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const kv = await startChildKeyvalet({ configFile, env, args: ['--workers', '2'] })
  const workerPids = (): number[] => [...kv.stdout().matchAll(/"msg":"worker started","pid":(\d+)/g)].map((m) => Number(m[1]))
  const logLines = (msg: string): Record<string, unknown>[] =>
    kv.stdout().split('\n').filter((l) => l.startsWith('{') && l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>)
  // Each request on a connection of its own, so that the primary hands them to the workers in turn.
  const send = async (path: string, key: string): Promise<{ status: number; error: unknown }> => {
    const res = await request(`${kv.url}/up${path}`, { reset: true, headers: { authorization: `Bearer ${key}` } })
    await res.body.text()
    return { status: res.statusCode, error: res.headers['x-keyvalet-error'] }
  }
  let stopped = false
  try {
    await until(() => /2 workers listening/.test(kv.stdout()), 'both workers to listen')
    const first = workerPids()
    assert.equal(first.length, 2)
    const created = await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
    assert.equal(created.code, 0, created.stderr)
    const { key, id } = JSON.parse(created.stdout) as { key: string; id: string }
    for (let i = 0; i < 20; i++) assert.deepEqual(await send(`/spread/${i}`, key), { status: 200, error: undefined })
    assert.equal(upstream.received.filter((r) => r.url.startsWith('/spread/')).length, 20)

    const revoked = await kv.cli(['session', 'revoke', id, '--config', configFile])
    assert.equal(revoked.code, 0, revoked.stderr)
    for (let i = 0; i < 10; i++) assert.deepEqual(await send(`/revoked/${i}`, key), { status: 401, error: 'task_key_revoked' })
    assert.equal(upstream.received.filter((r) => r.url.startsWith('/revoked/')).length, 0)

    process.kill(kv.pid, 'SIGHUP')
    await until(() => logLines('configuration reload: unchanged').length === 2, 'both workers to reload')

    const victim = first[0] as number
    process.kill(victim, 'SIGKILL')
    await until(() => workerPids().length === 3, 'the dead worker to be replaced')
    assert.equal(logLines('worker exited: restarting it')[0]?.pid, victim)
    assert.equal(kv.exited !== undefined && alive(kv.pid), true, 'the primary lives on')
    const second = (await kv.cli(['session', 'create', '--config', configFile, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json']))
    const { key: key2 } = JSON.parse(second.stdout) as { key: string }
    for (let i = 0; i < 6; i++) assert.equal((await send(`/after/${i}`, key2)).status, 200)

    const exit = await kv.stop('SIGTERM')
    stopped = true
    assert.deepEqual(exit, { code: 0, signal: null })
    for (const pid of workerPids()) assert.equal(alive(pid), false, `worker ${pid} stopped`)
  } finally {
    if (!stopped) await kv.stop('SIGKILL')
  }

  const store = SqliteStore.open(join(dir, 'data', 'keyvalet.db'))
  let records: AuditRecord[]
  try {
    records = (await store.audit.read(0, 10_000)).map((row) => JSON.parse(row.line) as AuditRecord)
  } finally {
    await store.close()
  }
  const instancesOf = (prefix: string) => new Set(records.filter((r) => r.path?.startsWith(prefix)).map((r) => r.instance))
  const revokedBy = new Set(records.filter((r) => r.error === 'task_key_revoked').map((r) => r.instance))
  assert.equal(records.filter((r) => r.path?.startsWith('/spread/')).length, 20)
  assert.equal(instancesOf('/spread/').size, 2, 'requests went to both workers, each writing its own chain')
  assert.equal(records.filter((r) => r.error === 'task_key_revoked').length, 10)
  assert.equal(revokedBy.size, 2, 'both workers saw the revocation')
  assert.equal(instancesOf('/after/').size, 2, 'the restarted worker serves (a chain of its own)')
  const verified = await cli(['audit', 'verify', '--config', configFile], { env })
  assert.equal(verified.code, 0, verified.stdout + verified.stderr)
  assert.match(verified.stdout, /^ok: 36 records in 3 chains, every chain intact/)
})
