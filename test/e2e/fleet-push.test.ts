import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { PostgresLocation } from '../../src/store/location.ts'
import { connect } from '../../src/store/postgres/connect.ts'
import { createLogger } from '../../src/log.ts'
import { cli } from '../helpers/cli.ts'
import { killListenConnections, propagatedWithin } from '../helpers/fleet.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startTestPostgres, type TestPostgres, storeBlock } from '../helpers/postgres.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** What the issue asks: a new configuration version takes effect on every instance within this. */
const PROPAGATION_LIMIT_MS = 1000
const SECRET = 'ghp_fleet-push-secret-0123456789'

let server: TestPostgres
let upstream: Upstream
/** Three keyvalet instances following pushed policies on one PostgreSQL database, each with its admin listener. */
let fleet: TestKeyvalet[] = []
let database = ''
let location: PostgresLocation
/** Each instance's operator log lines. */
const logs: string[][] = []
const masterKey = randomBytes(32).toString('base64')

function connector(allowed: string): string {
  return `  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: "${allowed}", severity: read }
`
}

before(async () => {
  server = await startTestPostgres()
  upstream = await startUpstream()
  const db = await server.database()
  const store = storeBlock(server, db)
  database = db.database
  location = db
  const config = `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
fleet: { policy: pushed }
${store.yaml}connectors:
${connector('/**')}`
  for (let i = 0; i < 3; i++) {
    const lines: string[] = []
    logs.push(lines)
    fleet.push(await startKeyvalet(config, { files: store.files, masterKey, admin: {}, log: createLogger({ write: (line: string) => lines.push(line) }) }))
  }
})
after(async () => {
  for (const kv of fleet) await kv.close()
  fleet = []
  await upstream?.close()
  await server?.stop()
})

function instance(i: number): TestKeyvalet {
  return fleet[i] ?? assert.fail(`no instance ${i}`)
}

async function proxied(kv: TestKeyvalet, key: string, path: string) {
  const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
  await res.body.text()
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'] }
}

async function adminGet<T>(kv: TestKeyvalet, token: string, path: string): Promise<T> {
  const res = await request(`${kv.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.body.text()
  assert.equal(res.statusCode, 200, text)
  return JSON.parse(text) as T
}

/** Asks `check` again (every 5 ms, at most 3 × the limit) until it holds; the time it took from `since`. */

/** `keyvalet config push` as its own process, on instance 0's host (its files and the master key). */
async function push(policy: string, name: string): Promise<{ seq: number; version: string }> {
  const file = join(instance(0).dir, name)
  writeFileSync(file, policy)
  const result = await cli(['config', 'push', file, '--config', instance(0).configFile], { env: { KEYVALET_MASTER_KEY: masterKey }, timeoutMs: 60_000 })
  assert.equal(result.code, 0, result.stderr)
  const m = /pushed policy (\d+) .* makes configuration (cfg_[0-9a-f]{16})/.exec(result.stdout)
  assert.ok(m !== null, result.stdout)
  return { seq: Number(m[1]), version: String(m[2]) }
}

describe('pushed policies across a fleet of three instances on one PostgreSQL store', () => {
  it('a push is in force on every instance within 1 s, notified and after the LISTEN connections were killed: upstream, client and audit agree', async () => {
    await instance(0).setSecret('up-token', SECRET)
    const { key, session } = await instance(0).mintKey(['up:read'])
    const { token } = await instance(0).adminToken('auditor')
    const start = instance(0).live.current.version
    for (const i of [0, 1, 2]) {
      assert.equal(instance(i).live.current.pushed, undefined, 'no push yet: the file alone')
      assert.equal((await proxied(instance(i), key, '/private/before')).status, 200)
    }

    const rounds = [
      { round: 'notified', allowed: '/public/**', refused: '/private/r1', allowedPath: '/public/r1' },
      { round: 'after the LISTEN connections were killed', allowed: '/open/**', refused: '/public/r2', allowedPath: '/open/r2' },
    ]
    for (const { round, allowed, refused, allowedPath } of rounds) {
      if (round !== 'notified') assert.equal(await killListenConnections(server, database), 3, 'each instance had one LISTEN connection')
      const pushed = await push(`connectors:\n${connector(allowed)}`, `policy-${allowed.length}.yaml`)
      const since = performance.now() // the push committed once the command exited
      assert.notEqual(pushed.version, start)
      for (const i of [0, 1, 2]) {
        const took = await propagatedWithin(since, PROPAGATION_LIMIT_MS, async () => {
          const answer = await proxied(instance(i), key, `${refused}-${i}`)
          return { ok: answer.status === 403 && answer.error === 'policy_denied', last: answer }
        })
        assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} refused under pushed policy ${pushed.seq} ${Math.round(took)} ms after the push (${round})`)
        process.stdout.write(`# PostgreSQL, ${round}: instance ${i} under pushed policy ${pushed.seq} after ${Math.round(took)} ms\n`)
        assert.equal(instance(i).live.current.version, pushed.version, 'every instance has the same file: the version the push printed')
        assert.equal(instance(i).live.current.pushed?.seq, pushed.seq)
        const sent = upstream.received.length
        assert.equal((await proxied(instance(i), key, `${refused}-final-${i}`)).error, 'policy_denied')
        assert.equal(upstream.received.length, sent, 'the refused request did not reach the upstream')
        assert.equal((await proxied(instance(i), key, `${allowedPath}-${i}`)).status, 200)
        assert.equal(upstream.received.at(-1)?.url, `${allowedPath}-${i}`)
        assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      }
      const records = (await instance(0).audit()).filter((r) => r.session === session)
      for (const i of [0, 1, 2]) {
        const final = records.find((r) => r.path === `${refused}-final-${i}`)
        assert.equal(final?.decision, 'deny')
        assert.equal(final?.config_version, pushed.version, `instance ${i}'s refusal names the pushed version`)
        assert.equal(records.find((r) => r.path === `${allowedPath}-${i}`)?.config_version, pushed.version)
      }
      // Every instance shows the push in force, and the fleet view lists it for each.
      const view = await adminGet<{ config_version: string; pushed: { seq: number; sha256: string } | null }>(instance(1), token, '/v1/config')
      assert.equal(view.pushed?.seq, pushed.seq)
      await propagatedWithin(performance.now(), PROPAGATION_LIMIT_MS, async () => {
        const fleetView = await adminGet<{ pushed_seq: number | null; consistent: boolean; instances: { pushed_seq: number | null; config_version: string }[] }>(instance(2), token, '/v1/fleet')
        return { ok: fleetView.pushed_seq === pushed.seq && fleetView.consistent && fleetView.instances.length === 3 && fleetView.instances.every((r) => r.pushed_seq === pushed.seq && r.config_version === pushed.version), last: fleetView }
      })
    }
    const listed = await cli(['config', 'pushed', '--config', instance(0).configFile], { env: { KEYVALET_MASTER_KEY: masterKey }, timeoutMs: 60_000 })
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /^2 .*verifies/m)
    assert.match(listed.stdout, /^1 .*verifies/m)
  })

  it('rows written by SQL (a wrong MAC; an older genuine push copied to a higher number) are refused by every instance; the push in force stays', async () => {
    const inForce = instance(0).live.current
    const text = `connectors:\n${connector('/**')}`
    // The runtime role's own password: what every instance holds, and all an attacker with it can do.
    const sql = connect(location, { max: 1 })
    try {
      await sql`INSERT INTO pushed_configs (seq, text, sha256, pushed_at, pushed_by, key_id, mac)
        SELECT seq + 1, ${text}, ${createHash('sha256').update(text).digest('hex')}, pushed_at, 'mallory@db', key_id, ${randomBytes(32)} FROM pushed_configs ORDER BY seq DESC LIMIT 1`
      // Push 1 as it was (text, digest, MAC and all), renumbered above the one in force: a replay.
      await sql`INSERT INTO pushed_configs (seq, text, sha256, pushed_at, pushed_by, key_id, mac)
        SELECT (SELECT MAX(seq) + 1 FROM pushed_configs), text, sha256, pushed_at, pushed_by, key_id, mac FROM pushed_configs WHERE seq = 1`
    } finally {
      await sql.end({ timeout: 1 })
    }
    const { key } = await instance(0).mintKey(['up:read'])
    const forged = (inForce.pushed?.seq ?? 0) + 1
    for (const i of [0, 1, 2]) {
      await propagatedWithin(performance.now(), PROPAGATION_LIMIT_MS, async () => {
        const refusals = logs[i]?.filter((l) => l.includes('pushed policy refused') && l.includes('its MAC does not verify')) ?? []
        return { ok: [forged, forged + 1].every((seq) => refusals.some((l) => l.includes(`"pushed":${seq}`))), last: logs[i]?.slice(-3) }
      })
      assert.equal(instance(i).live.current.version, inForce.version)
      assert.equal(instance(i).live.current.pushed?.seq, inForce.pushed?.seq)
      assert.equal((await proxied(instance(i), key, '/private/forged')).error, 'policy_denied')
    }
  })
})
