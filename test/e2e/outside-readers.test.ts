import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync, readdirSync, readlinkSync } from 'node:fs'
import { it } from 'node:test'
import { promisify } from 'node:util'
import { request } from 'undici'
import { auditPathFor } from '../../src/store/sqlite-store.ts'
import { cli, MAIN } from '../helpers/cli.ts'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

const run = promisify(execFile)

/** Files this process holds open that were deleted from under it (Linux marks them " (deleted)"). */
function deletedOpenFiles(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      return target.endsWith(' (deleted)') ? [target] : []
    } catch {
      return [] // the descriptor closed while we looked
    }
  })
}

it('outside readers (sqlite3, a second keyvalet audit tail) never take the live audit log away from keyvalet', async () => {
  const upstream = await startUpstream()
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
  const env = { KEYVALET_MASTER_KEY: kv.masterKey }
  const databasePath = kv.runtime.config.databasePath
  const auditPath = auditPathFor(databasePath)
  const follower = spawn(process.execPath, [MAIN, 'audit', 'tail', '--follow', '-n', '1000', '--config', kv.configFile], {
    env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let followed = ''
  follower.stdout.on('data', (c: Buffer) => { followed += c.toString() })
  try {
    const { key } = await kv.mintKey(['up:read'])
    const requests = 30
    const statuses: number[] = []
    for (let i = 0; i < requests; i++) {
      const res = await request(`${kv.url}/up/item/${i}`, { headers: { authorization: `Bearer ${key}` } })
      await res.body.dump()
      statuses.push(res.statusCode)
      // Between requests an outside reader opens and closes each database, as an operator's sqlite3 would.
      if (i % 3 === 0) await run('sqlite3', [auditPath, 'select count(*) from audit'])
      if (i % 3 === 1) await run('sqlite3', [databasePath, 'select count(*) from sessions'])
      if (i % 10 === 2) assert.equal((await cli(['audit', 'tail', '-n', '1', '--config', kv.configFile], { env })).code, 0)
    }
    assert.deepEqual(statuses, Array(requests).fill(200))
    assert.equal(upstream.received.length, requests)
    assert.deepEqual(deletedOpenFiles(), [], 'keyvalet holds no deleted database file (its -wal was not removed under it)')
    assert.ok(existsSync(`${auditPath}-wal`), 'the live audit log keeps its write-ahead log')

    // Every request's record is visible to a new reader: verify and tail, in other processes.
    const verify = await cli(['audit', 'verify', '--config', kv.configFile], { env })
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, new RegExp(`^ok: ${requests} records in 1 chain, every chain intact`))
    const tail = await cli(['audit', 'tail', '-n', '1000', '--config', kv.configFile], { env })
    const paths = tail.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { path: string }).path)
    assert.deepEqual(paths, Array.from({ length: requests }, (_, i) => `/item/${i}`))
    // The follower, a second keyvalet reading throughout, saw every record too.
    for (let i = 0; i < 100 && followed.split('\n').length <= requests; i++) await new Promise((r) => setTimeout(r, 50))
    assert.equal(followed.trim().split('\n').length, requests)
  } finally {
    follower.kill('SIGKILL')
    await kv.close()
    await upstream.close()
  }
})
