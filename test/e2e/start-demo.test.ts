import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cli, MAIN } from '../helpers/cli.ts'
import { freePort } from '../helpers/ports.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/keyvalet.yaml', import.meta.url))

/** Resolves once `check(text())` holds, looking every 50 ms for at most `ms`. */
async function until(text: () => string, check: RegExp, ms: number): Promise<RegExpExecArray> {
  for (let waited = 0; waited <= ms; waited += 50) {
    const m = check.exec(text())
    if (m !== null) return m
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`never printed ${check}: ${text()}`)
}

describe("the README's first command: npm start (start --demo with examples/keyvalet.yaml)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-start-demo-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('mints a task key over the admin API as printed, attaches the real credential to an allowed request, refuses a forbidden one, and audits all of it', async () => {
    const upstreamPort = await freePort()
    // The example as it is, but on free ports and a data folder of its own.
    const config = readFileSync(EXAMPLE, 'utf8')
      .replace(/^(\s+(?:gateway|forward|admin)): 127\.0\.0\.1:\d+$/gm, '$1: 127.0.0.1:0')
      .replace('upstream: http://127.0.0.1:8788', `upstream: http://127.0.0.1:${upstreamPort}`)
      .replace(/^data_dir: .*$/m, `data_dir: ${join(dir, 'data')}`)
    const file = join(dir, 'keyvalet.yaml')
    writeFileSync(file, config)
    const child = spawn(process.execPath, [MAIN, 'start', '--config', file, '--demo'], { env: { PATH: process.env.PATH, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', () => {})
    const exited = new Promise((resolve) => child.once('exit', resolve))
    try {
      await until(() => stdout, /audit verify --config/, 30_000)
      const gateway = (await until(() => stdout, /gateway listening on (http:\/\/\S+)/, 0))[1] as string
      const [, token, adminUrl] = await until(() => stdout, /-H "Authorization: Bearer (kva_[\w-]+)".* (http:\/\/127\.0\.0\.1:\d+)\/v1\/sessions/, 0)

      // The orchestrator's call, as printed.
      const minted = await fetch(`${adminUrl}/v1/sessions`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'demo-agent', user: 'alice', workspace: 'demo', grant: ['demo:read'], ttl: '15m' }),
      })
      assert.equal(minted.status, 201)
      const { key, session } = await minted.json() as { key: string; session: { id: string } }

      const allowed = await fetch(`${gateway}/demo/items/42`, { headers: { authorization: `Bearer ${key}` } })
      const answer = await allowed.text()
      assert.equal(allowed.status, 200)
      const real = (await until(() => stdout, /\[demo upstream\] received GET \/items\/42 with authorization: Bearer (demo-secret-[0-9a-f]+)/, 5000))[1] as string
      assert.ok(!answer.includes(real), 'the sandbox never sees the real credential')
      assert.match(answer, /"authorization":"Bearer \*+"/)

      const refused = await fetch(`${gateway}/demo/items`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' })
      const error = await refused.json() as { error: { code: string; reason: string } }
      assert.equal(refused.status, 403)
      assert.deepEqual([error.error.code, error.error.reason], ['policy_denied', 'severity_exceeds_grant'])
      assert.doesNotMatch(stdout, /received POST \/items/, 'the refused request never reached the upstream')

      const tail = await cli(['audit', 'tail', '-n', '50', '--config', file], { env: { HOME: dir } })
      const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      const ours = records.filter((r) => r.session === session.id)
      assert.deepEqual(ours.map((r) => [r.method, r.path, r.decision, r.error]), [['GET', '/items/42', 'allow', null], ['POST', '/items', 'deny', 'policy_denied']])
      assert.ok(records.some((r) => r.action === 'session.create' && r.decision === 'allow'), 'the admin call is in the same audit log')
      assert.ok(!tail.stdout.includes(real) && !tail.stdout.includes(key), 'no secret and no task key in the audit')
      const verify = await cli(['audit', 'verify', '--config', file], { env: { HOME: dir } })
      assert.equal(verify.code, 0, verify.stderr)
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  })
})
