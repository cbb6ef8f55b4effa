import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'node:test'
import { request } from 'undici'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

const config = (upstreamUrl: string, allowed: string, extra = ''): string => `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./data
connectors:
  up:
    upstream: ${upstreamUrl}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read-${allowed}, methods: [GET], path: /${allowed}/**, severity: read }]
${extra}`

/** Polls `check` (bounded) until it holds. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  assert.fail(`timed out waiting for ${what}`)
}

it('keyvalet start reloads on SIGHUP (never dies of it) and, with --watch, when the file is saved; a broken file leaves the old configuration in force', async () => {
  const upstream = await startUpstream()
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-reload-'))
  const file = join(dir, 'keyvalet.yaml')
  writeFileSync(file, config(upstream.url, 'a'))
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const child = await startChildKeyvalet({ configFile: file, env, args: ['--watch'] })
  try {
    const created = await child.cli(['session', 'create', '--config', file, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'up:read', '--json'])
    const { key } = JSON.parse(created.stdout) as { key: string }
    const status = async (path: string): Promise<number> => {
      const res = await request(`${child.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
      await res.body.dump()
      return res.statusCode
    }
    assert.equal(await status('/a/1'), 200)
    assert.equal(await status('/b/1'), 403)

    // Written without the watch noticing first: the watch fires only after the file is quiet.
    writeFileSync(file, config(upstream.url, 'b'))
    process.kill(child.pid, 'SIGHUP')
    await until(async () => (await status('/b/2')) === 200, 'the reload to B')
    assert.equal(await status('/a/2'), 403)

    writeFileSync(file, 'version: 1\nconnectors: { up: { upstream: 42 } }\n')
    process.kill(child.pid, 'SIGHUP')
    await until(() => /configuration reload failed/.test(child.stdout()), 'the failed reload to be logged')
    assert.equal(await status('/b/3'), 200, 'the broken file left B in force')

    writeFileSync(file, config(upstream.url, 'a'))
    await until(async () => (await status('/a/3')) === 200, 'the watch to reload A')

    // The watch also sees the saves that SIGHUP reloaded: those reloads find the file unchanged.
    // The operator log goes out in batches (about 20 ms apart, src/log.ts): the watch's line may follow the reload it tells of.
    const reloads = (): Set<string> => new Set(child.stdout().split('\n').filter((l) => l.includes('configuration reload')).map((l) => JSON.parse(l) as { msg: string; trigger: string; error?: string })
      .map((l) => `${l.msg} (${l.trigger}${l.error === undefined ? '' : `, ${l.error}`})`))
    await until(() => reloads().has('configuration reloaded (watch)'), 'the watch reload to be logged')
    const seen = reloads()
    for (const expected of ['configuration reloaded (signal)', 'configuration reloaded (watch)']) assert.ok(seen.has(expected), `${expected} in ${[...seen].join('; ')}`)
    assert.ok([...seen].some((l) => /^configuration reload failed: the configuration in force stays \((signal|watch), config_invalid\)$/.test(l)), [...seen].join('; '))
    const audit = (await child.cli(['audit', 'tail', '-n', '100', '--config', file])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; decision: string; config_version: string })
    const versions = new Set(audit.map((r) => r.config_version))
    assert.equal(versions.size, 2, 'the records name the two versions (A, then B, then A again)')
    assert.equal(audit.at(-1)?.config_version, audit[0]?.config_version)
  } finally {
    const exit = await child.stop()
    assert.equal(exit.signal, null, 'stopped by SIGTERM gracefully, not killed')
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
