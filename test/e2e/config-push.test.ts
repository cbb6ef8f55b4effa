import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { createLogger } from '../../src/log.ts'
import { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import { main } from '../../src/cli/main.ts'
import { Capture, inProcessCli } from '../helpers/capture.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

/** What the issue asks: a pushed configuration is in force on every instance within this. */
const PROPAGATION_LIMIT_MS = 1000
const SECRET = 'ghp_pushed-secret-0123456789'

let upstream: Upstream
let shared: string
before(async () => {
  upstream = await startUpstream()
  shared = mkdtempSync(join(tmpdir(), 'keyvalet-push-'))
})
after(async () => {
  await upstream?.close()
  rmSync(shared, { recursive: true, force: true })
})

/** An instance's file: one connector whose rule allows GET under `allowed`, on the data folder `dataDir`. */
function instanceConfig(dataDir: string, policy: 'file' | 'pushed' = 'pushed', allowed = '/**'): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ${dataDir}
fleet: { policy: ${policy} }
connectors:
${connectorYaml(allowed)}`
}

function connectorYaml(allowed: string, name = 'up'): string {
  return `  ${name}:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: up-token, inject: bearer }
    rules:
      - { id: read, methods: [GET], path: "${allowed}", severity: read }
`
}

/** A policy file allowing GET under `allowed` only. */
function policyAllowing(allowed: string, extra = ''): string {
  return `connectors:\n${connectorYaml(allowed)}${extra}`
}

function logged(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = []
  return { lines, log: createLogger({ write: (line: string) => lines.push(line) }) }
}

async function proxied(kv: TestKeyvalet, key: string, path: string) {
  const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
  await res.body.text()
  return { status: res.statusCode, error: res.headers['x-keyvalet-error'] }
}

/** Runs `keyvalet config <args>` in this process against `kv`'s files. */
async function configCli(kv: TestKeyvalet, args: string[]) {
  const run = inProcessCli(kv, ['config', ...args])
  const code = await run.code
  return { code, stdout: run.stdout.text, stderr: run.stderr.text }
}

/** Asks `check` again (every 5 ms, at most 3 × the limit) until it holds; the time it took from `since`. */
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

describe('pushed policies on a SQLite store', () => {
  let fleet: TestKeyvalet[] = []
  const logs = [logged(), logged()]
  const metrics = new KeyvaletMetrics()
  const masterKey = randomBytes(32).toString('base64')
  const dataDir = () => join(shared, 'fleet')
  before(async () => {
    fleet.push(await startKeyvalet(instanceConfig(dataDir()), { masterKey, log: logs[0]?.log, metrics }))
    fleet.push(await startKeyvalet(instanceConfig(dataDir()), { masterKey, log: logs[1]?.log }))
  })
  after(async () => {
    for (const kv of fleet) await kv.close()
    fleet = []
  })
  const kv = (i: number): TestKeyvalet => fleet[i] ?? assert.fail(`no instance ${i}`)

  it('two instances on one file put a push in force within 1 s: the upstream, the client and the audit see the new version', async () => {
    await kv(0).setSecret('up-token', SECRET)
    const { key, session } = await kv(0).mintKey(['up:read'])
    const before = kv(0).live.current.version
    assert.equal(kv(0).live.current.pushed, undefined)
    for (const i of [0, 1]) assert.equal((await proxied(kv(i), key, '/private/a')).status, 200)

    writeFileSync(join(kv(0).dir, 'policy.yaml'), policyAllowing('/public/**'))
    const pushed = await configCli(kv(0), ['push', 'policy.yaml'])
    const since = performance.now()
    assert.equal(pushed.code, 0, pushed.stderr)
    const version = /makes configuration (cfg_[0-9a-f]{16})/.exec(pushed.stdout)?.[1]
    assert.ok(version !== undefined && version !== before, pushed.stdout)
    assert.match(pushed.stdout, /pushed policy 1 /)

    for (const i of [0, 1]) {
      const took = await within(since, async () => {
        const answer = await proxied(kv(i), key, `/private/after-${i}`)
        return { ok: answer.status === 403 && answer.error === 'policy_denied', last: answer }
      })
      assert.ok(took < PROPAGATION_LIMIT_MS, `instance ${i} refused under the pushed policy ${Math.round(took)} ms after the push`)
      process.stdout.write(`# SQLite: instance ${i} under pushed policy 1 after ${Math.round(took)} ms\n`)
      assert.equal(kv(i).live.current.version, version)
      assert.deepEqual(kv(i).live.current.pushed?.seq, 1)
      assert.equal((await proxied(kv(i), key, `/private/final-${i}`)).error, 'policy_denied')
      assert.equal((await proxied(kv(i), key, `/public/ok-${i}`)).status, 200)
    }
    assert.ok(!upstream.received.some((r) => r.url.startsWith('/private/final')), 'no refused request reached the upstream')
    assert.equal(upstream.received.at(-1)?.url, '/public/ok-1')
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
    const records = (await kv(0).audit()).filter((r) => r.session === session)
    const refused = records.filter((r) => r.decision === 'deny')
    assert.ok(refused.length >= 4 && refused.every((r) => r.error === 'policy_denied' && r.config_version === version), JSON.stringify(refused))
    assert.ok(records.filter((r) => r.path === '/private/a').every((r) => r.config_version === before))
    assert.ok(records.some((r) => r.path === '/public/ok-0' && r.config_version === version))
    assert.ok(logs[1]?.lines.some((l) => l.includes('"trigger":"push"') && l.includes('"pushed":1')), 'the push is in the operator log')
  })

  it('a reload of the file keeps the pushed policy over it; a push of a fixed field or a broken policy is refused and stores nothing', async () => {
    const inForce = kv(1).live.current
    writeFileSync(kv(1).configFile, instanceConfig(dataDir(), 'pushed', '/other/**'))
    const reloaded = await kv(1).live.reload('admin')
    assert.equal(reloaded.result, 'unchanged', 'the file changed only what the push replaces')
    assert.equal(kv(1).live.current.pushed?.seq, inForce.pushed?.seq)

    writeFileSync(join(kv(0).dir, 'fixed.yaml'), `${policyAllowing('/x/**')}listen: { gateway: "127.0.0.1:1" }\nlimits: { max_body_inspect_bytes: 1024, max_body_bytes: 10 }\n`)
    const fixed = await configCli(kv(0), ['push', 'fixed.yaml'])
    assert.equal(fixed.code, 1)
    assert.match(fixed.stderr, /may hold only connectors, tunnels, .*; it holds listen, limits\.max_body_bytes/)
    writeFileSync(join(kv(0).dir, 'broken.yaml'), `connectors:\n  up: { upstream: "not a url", rules: [{ id: x, methods: [GET], path: /**, severity: nope }] }\n`)
    const broken = await configCli(kv(0), ['push', 'broken.yaml'])
    assert.equal(broken.code, 1)
    assert.match(broken.stderr, /connectors\.up\.rules\[0\]\.severity/)
    const listed = await configCli(kv(0), ['pushed'])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /^1 .* verifies \(master key [0-9a-f]{16}\)$/m)
    assert.doesNotMatch(listed.stdout, /^2 /m, 'nothing was stored for the refused pushes')
  })

  it('a push forged by SQL (a wrong MAC, or a valid push whose text was altered) is refused, logged and counted; the configuration in force stays', async () => {
    const inForce = kv(0).live.current
    const { key } = await kv(0).mintKey(['up:read'])
    const db = new DatabaseSync(join(dataDir(), 'keyvalet.db'))
    try {
      const [genuine] = db.prepare('SELECT * FROM pushed_configs WHERE seq = 1').all()
      assert.ok(genuine !== undefined)
      const forged = policyAllowing('/**', '') // everything allowed again, as an attacker would want
      const insert = db.prepare('INSERT INTO pushed_configs (seq, text, sha256, pushed_at, pushed_by, key_id, mac) VALUES (?, ?, ?, ?, ?, ?, ?)')
      insert.run(2, forged, createHashHex(forged), Date.now(), 'mallory@db', String(genuine.key_id), randomBytes(32))
      // The genuine row's digest and MAC, over another text: the text no longer matches what the MAC covers.
      insert.run(3, forged, String(genuine.sha256), Number(genuine.pushed_at), String(genuine.pushed_by), String(genuine.key_id), genuine.mac as Uint8Array)
    } finally {
      db.close()
    }
    for (const i of [0, 1]) {
      for (let n = 0; n < 100 && !logs[i]?.lines.some((l) => l.includes('pushed policy refused') && l.includes('"pushed":2')); n++) await new Promise((r) => setTimeout(r, 20))
      const refusals = logs[i]?.lines.filter((l) => l.includes('pushed policy refused')) ?? []
      assert.ok(refusals.some((l) => l.includes('"pushed":3') && l.includes('does not match the digest')), refusals.join('\n'))
      assert.ok(refusals.some((l) => l.includes('"pushed":2') && l.includes('MAC does not verify')), refusals.join('\n'))
      assert.equal(kv(i).live.current.version, inForce.version)
      assert.equal(kv(i).live.current.pushed?.seq, 1)
      assert.equal((await proxied(kv(i), key, '/private/still')).status, 403)
    }
    assert.match(await metrics.registry.expose(), /keyvalet_config_pushes_refused_total 2/)
    const listed = await configCli(kv(0), ['pushed'])
    assert.match(listed.stdout, /^3 .*REFUSED: its text does not match/m)
    assert.match(listed.stdout, /^2 .*mallory@db.*REFUSED: its MAC does not verify/m)

    // A genuine push after the forged ones is taken (its number is above them).
    writeFileSync(join(kv(0).dir, 'policy.yaml'), policyAllowing('/still/**'))
    const pushed = await configCli(kv(0), ['push', 'policy.yaml'])
    assert.match(pushed.stdout, /pushed policy 4 /)
    for (const i of [0, 1]) {
      await within(performance.now(), async () => {
        const answer = await proxied(kv(i), key, '/still/ok')
        return { ok: answer.status === 200, last: answer }
      })
      assert.equal(kv(i).live.current.pushed?.seq, 4)
    }
  })

  it('an instance started later takes the newest push that verifies; one with policy: file ignores pushes', async () => {
    const { log, lines } = logged()
    const late = await startKeyvalet(instanceConfig(dataDir()), { masterKey, log })
    const own = await startKeyvalet(instanceConfig(dataDir(), 'file'), { masterKey })
    try {
      assert.equal(late.live.current.pushed?.seq, 4)
      assert.equal(late.live.current.version, kv(0).live.current.version)
      assert.ok(lines.some((l) => l.includes('serving under the pushed policy')))
      assert.equal(own.live.current.pushed, undefined)
      const { key } = await late.mintKey(['up:read'])
      assert.equal((await proxied(late, key, '/private/x')).status, 403)
      assert.equal((await proxied(own, key, '/private/x')).status, 200)
    } finally {
      await late.close()
      await own.close()
    }
  })

  it('newer pushes deleted by SQL (a rollback) are logged and never make a running instance take a lower number', async () => {
    const inForce = kv(0).live.current
    assert.equal(inForce.pushed?.seq, 4)
    const db = new DatabaseSync(join(dataDir(), 'keyvalet.db'))
    try {
      db.exec('DELETE FROM pushed_configs WHERE seq > 1')
    } finally {
      db.close()
    }
    for (const i of [0, 1]) {
      await within(performance.now(), async () => {
        const line = logs[i]?.lines.find((l) => l.includes('older than the one in force'))
        return { ok: line?.includes('"newest_stored":1') === true && line.includes('"pushed":4'), last: logs[i]?.lines.slice(-2) }
      })
      assert.equal(kv(i).live.current.version, inForce.version)
      assert.equal(kv(i).live.current.pushed?.seq, 4)
    }
  })
})

function createHashHex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

describe('pushed policies through a master-key rotation', () => {
  let fleet: TestKeyvalet[] = []
  const masterKey = randomBytes(32).toString('base64')
  const dataDir = () => join(shared, 'rotation')
  before(async () => {
    for (let i = 0; i < 2; i++) fleet.push(await startKeyvalet(instanceConfig(dataDir()), { masterKey, keyFile: true }))
  })
  after(async () => {
    for (const kv of fleet) await kv.close()
    fleet = []
  })
  const kv = (i: number): TestKeyvalet => fleet[i] ?? assert.fail(`no instance ${i}`)
  /** The CLI in this process with the key from the key file (as rotation needs), not the environment. */
  async function keyFileCli(args: string[]) {
    const stdout = new Capture()
    const stderr = new Capture()
    const code = await main([...args, '--config', kv(0).configFile], { stdin: Readable.from([]), stdout, stderr, env: {}, cwd: kv(0).dir })
    return { code, stdout: stdout.text, stderr: stderr.text }
  }
  async function pushAllowing(allowed: string): Promise<number> {
    writeFileSync(join(kv(0).dir, 'policy.yaml'), policyAllowing(allowed))
    const pushed = await keyFileCli(['config', 'push', 'policy.yaml'])
    assert.equal(pushed.code, 0, pushed.stderr)
    return Number(/pushed policy (\d+)/.exec(pushed.stdout)?.[1])
  }

  it('after a rotation the pushes stored verify under the new key (a later instance takes them) and a new push is followed', async () => {
    await kv(0).setSecret('up-token', SECRET)
    const { key } = await kv(0).mintKey(['up:read'])
    const first = await pushAllowing('/first/**')
    for (const i of [0, 1]) await within(performance.now(), async () => ({ ok: kv(i).live.current.pushed?.seq === first, last: kv(i).live.current.pushed }))

    const rotated = await keyFileCli(['vault', 'rotate-master-key'])
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.match(rotated.stdout, /1 pushed policy re-MACed/)
    const newKeyId = /→ ([0-9a-f]{16})/.exec(rotated.stdout)?.[1]
    const listed = await keyFileCli(['config', 'pushed'])
    assert.match(listed.stdout, new RegExp(`^${first} .*verifies \\(master key ${newKeyId}\\)$`, 'm'))

    const second = await pushAllowing('/second/**')
    for (const i of [0, 1]) {
      await within(performance.now(), async () => {
        const answer = await proxied(kv(i), key, '/second/ok')
        return { ok: answer.status === 200 && kv(i).live.current.pushed?.seq === second, last: [answer, kv(i).live.current.pushed] }
      })
      assert.equal((await proxied(kv(i), key, '/first/no')).error, 'policy_denied')
    }
    const late = await startKeyvalet(instanceConfig(dataDir()), { masterKey: readFileSync(join(dataDir(), 'master.key'), 'utf8').trim(), keyFile: true })
    try {
      assert.equal(late.live.current.pushed?.seq, second, 'a later instance, which holds only the new key, verifies the push')
    } finally {
      await late.close()
    }
  })
})
