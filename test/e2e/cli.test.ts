import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { cli, MAIN } from '../helpers/cli.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_cliSecretValue_9876543210abcdef'
const run = promisify(execFile)

describe('the keyvalet CLI', () => {
  let dir: string
  let file: string
  let upstream: Upstream
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }

  before(async () => {
    upstream = await startUpstream()
    dir = mkdtempSync(join(tmpdir(), 'keyvalet-cli-'))
    file = join(dir, 'keyvalet.yaml')
    writeFileSync(file, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./data
connectors:
  github:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`)
  })
  after(async () => {
    rmSync(dir, { recursive: true, force: true })
    await upstream.close()
  })

  it('prints help for every command', async () => {
    const top = await cli(['--help'])
    assert.equal(top.code, 0)
    for (const name of ['start', 'demo', 'check', 'secret', 'session', 'audit', 'ca']) {
      assert.match(top.stdout, new RegExp(`\\b${name}\\b`))
      const sub = await cli([name, '--help'])
      assert.equal(sub.code, 0, name)
      assert.match(sub.stdout, new RegExp(`usage: keyvalet ${name}`))
    }
    const unknown = await cli(['frobnicate'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command/)
  })

  it('check: accepts a valid file, warns about cleartext, fails with file:line on a broken one', async () => {
    const ok = await cli(['check', file])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /ok: .*1 connectors, 1 rules/)
    assert.match(ok.stdout, /warning: .*cleartext|warning: .*http/i)
    assert.equal((await cli(['check', file, '--strict'])).code, 1)
    const broken = join(dir, 'broken.yaml')
    writeFileSync(broken, 'version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    rules:\n      - { id: r, methods: [GET], path: /a, severity: superuser }\n')
    const bad = await cli(['check', broken])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /broken\.yaml:6/)
    assert.match(bad.stderr, /severity/)
  })

  it('check: notes which headers that change access or meaning each write rule of an aws_sigv4 connector lets through', async () => {
    const s3 = join(dir, 's3.yaml')
    writeFileSync(s3, 'version: 1\nconnectors:\n  s3:\n    upstream: https://s3.eu-west-1.amazonaws.com\n    credential: { secret: aws, inject: aws_sigv4, aws: { service: s3, region: eu-west-1 } }\n    rules:\n      - { id: upload, methods: [PUT], path: "/b/uploads/**", severity: write, headers: { x-amz-acl: { pattern: private } } }\n')
    const out = await cli(['check', s3])
    assert.equal(out.code, 0, out.stderr)
    assert.match(out.stdout, /^note: connectors\.s3: requests carrying x-amz-acl, x-amz-grant-\*, .* are refused unless the rule that allows them names the header$/m)
    assert.match(out.stdout, /^note: connectors\.s3\.rules\[0\]: rule upload \(write: PUT \/b\/uploads\/\*\*\) lets through x-amz-acl matching private; none of the other headers$/m)
  })

  it('check: explains that a path ending in /** does not match its prefix, in a note that --strict does not count', async () => {
    const ok = await cli(['check', file])
    assert.match(ok.stdout, /note: .*keyvalet\.yaml:\d+: connectors\.github\.rules\[0\]\.path: rule read-issues: \/repos\/acme\/app\/issues\/\*\* matches paths below \/repos\/acme\/app\/issues\/, not \/repos\/acme\/app\/issues itself; to allow it too, write path: \[\/repos\/acme\/app\/issues, \/repos\/acme\/app\/issues\/\*\*\]/)
    const quiet = join(dir, 'quiet.yaml')
    writeFileSync(quiet, 'version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    credential: { secret: x-token, inject: bearer }\n    rules:\n      - { id: r, methods: [GET], path: /repos/acme/app/issues/**, severity: read }\n')
    const strict = await cli(['check', quiet, '--strict'])
    assert.match(strict.stdout, /note: /)
    assert.equal(strict.code, 0, 'a note is not a warning')
  })

  it('secret: set reads stdin, list shows metadata only, no value is ever printed', async () => {
    const set = await cli(['secret', 'set', 'github-token', '--config', file], { input: `${SECRET}\n`, env })
    assert.equal(set.code, 0, set.stderr)
    const list = await cli(['secret', 'list', '--config', file, '--json'], { env })
    assert.equal(list.code, 0)
    const parsed = JSON.parse(list.stdout) as { name: string }[]
    assert.deepEqual(parsed.map((s) => s.name), ['github-token'])
    for (const out of [set, list]) assert.ok(!(out.stdout + out.stderr).includes(SECRET))
    const db = readFileSync(join(dir, 'data', 'keyvalet.db'))
    assert.ok(!db.includes(SECRET), 'the value is not in the database file in clear')
    const empty = await cli(['secret', 'set', 'x', '--config', file], { input: '', env })
    assert.equal(empty.code, 1)
    assert.match(empty.stderr, /no value on standard input/)
    const badName = await cli(['secret', 'set', 'Bad Name', '--config', file], { input: 'v', env })
    assert.equal(badName.code, 1)
  })

  it('session: create prints the key once, --env and --json, list and revoke', async () => {
    const created = await cli(['session', 'create', '--config', file, '--agent', 'triage-bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'github:read', '--ttl', '1h', '--json'], { env })
    assert.equal(created.code, 0, created.stderr)
    const session = JSON.parse(created.stdout) as { id: string; key: string; state: string }
    assert.match(session.key, /^kvt_/)
    assert.equal(session.state, 'active')
    const withEnv = await cli(['session', 'create', '--config', file, '--agent', 'a', '--user', 'u', '--workspace', 'w', '--grant', 'github:read', '--env'], { env })
    assert.match(withEnv.stdout, /^export KEYVALET_TASK_KEY=kvt_/m)
    assert.match(withEnv.stdout, /^export GITHUB_API_URL=http:\/\/127\.0\.0\.1:0\/github$/m)
    const badGrant = await cli(['session', 'create', '--config', file, '--agent', 'a', '--user', 'u', '--workspace', 'w', '--grant', 'slack:read'], { env })
    assert.equal(badGrant.code, 1)
    assert.match(badGrant.stderr, /slack/)
    const list = await cli(['session', 'list', '--config', file, '--json'], { env })
    const sessions = JSON.parse(list.stdout) as { id: string }[]
    assert.ok(sessions.some((s) => s.id === session.id))
    assert.ok(!list.stdout.includes(session.key), 'list never shows keys')
    const revoked = await cli(['session', 'revoke', session.id, '--config', file], { env })
    assert.equal(revoked.code, 0)
    const after = JSON.parse((await cli(['session', 'list', '--config', file, '--json'], { env })).stdout) as { id: string; state: string }[]
    assert.equal(after.find((s) => s.id === session.id)?.state, 'revoked')
    assert.equal((await cli(['session', 'revoke', 'ses_nope', '--config', file], { env })).code, 1)
  })

  it('start serves requests; audit tail shows them; audit verify detects tampering', async () => {
    const { key } = JSON.parse((await cli(['session', 'create', '--config', file, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'github:read', '--json'], { env })).stdout) as { key: string }
    const child = spawn(process.execPath, [MAIN, 'start', '--config', file], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = ''
        const timer = setTimeout(() => reject(new Error(`start printed no address: ${out}`)), 15_000)
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString()
          const match = /gateway listening on (http:\/\/\S+)/.exec(out)
          if (match?.[1] !== undefined) {
            clearTimeout(timer)
            resolve(match[1])
          }
        })
      })
      const before = upstream.received.length
      const ok = await request(`${url}/github/repos/acme/app/issues/1`, { headers: { authorization: `Bearer ${key}` } })
      assert.equal(ok.statusCode, 200)
      assert.ok(!(await ok.body.text()).includes(SECRET))
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      const denied = await request(`${url}/github/repos/acme/app/pulls/1`, { headers: { authorization: `Bearer ${key}` } })
      assert.equal(denied.statusCode, 403)
      await denied.body.dump()
      assert.equal(upstream.received.length, before + 1)
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.on('close', resolve))
    }
    const tail = await cli(['audit', 'tail', '--config', file, '-n', '2'], { env })
    assert.equal(tail.code, 0, tail.stderr)
    const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { decision: string; reason: string; agent: string })
    assert.deepEqual(lines.map((l) => [l.decision, l.reason, l.agent]), [['allow', 'rule_matched', 'bot'], ['deny', 'no_rule_for_path', 'bot']])
    assert.ok(!tail.stdout.includes(SECRET) && !tail.stdout.includes(key))
    const verified = await cli(['audit', 'verify', '--config', file], { env })
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.match(verified.stdout, /ok: 2 records/)
    const db = new DatabaseSync(join(dir, 'data', 'keyvalet-audit.db'))
    db.exec('DROP TRIGGER IF EXISTS audit_no_update')
    db.exec(`UPDATE audit SET line = replace(line, '"decision":"deny"', '"decision":"allow"') WHERE seq = 2`)
    db.close()
    const broken = await cli(['audit', 'verify', '--config', file], { env })
    assert.equal(broken.code, 1)
    assert.match(broken.stdout, /BROKEN in instance ins_[0-9a-f]{16} at record 2/)
  })

  it('refuses a wrong master key with a clear message, and creates a 0600 key file on first start', async () => {
    const wrong = await cli(['secret', 'list', '--config', file], { env: { KEYVALET_MASTER_KEY: 'short' } })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /KEYVALET_MASTER_KEY/)
    assert.ok(!wrong.stderr.includes('short'))
    const fresh = mkdtempSync(join(tmpdir(), 'keyvalet-fresh-'))
    try {
      const freshFile = join(fresh, 'keyvalet.yaml')
      writeFileSync(freshFile, readFileSync(file, 'utf8'))
      const set = await cli(['secret', 'set', 'github-token', '--config', freshFile], { input: 'v' })
      assert.equal(set.code, 0, set.stderr)
      assert.equal(statSync(join(fresh, 'data', 'master.key')).mode & 0o777, 0o600)
    } finally {
      rmSync(fresh, { recursive: true, force: true })
    }
  })

  it('ca export prints the same interception CA every time; --env prints the forward-mode environment; keyvalet.* secrets are reserved', async () => {
    const forwardFile = join(dir, 'forward.yaml')
    writeFileSync(forwardFile, `version: 1
listen: { gateway: "127.0.0.1:8787", forward: "127.0.0.1:8789" }
data_dir: ./data
connectors:
  openai:
    upstream: https://api.openai.example
    credential: { secret: openai-key, inject: bearer }
    placeholder: sk-placeholder-not-a-real-key
    rules: [{ id: models, methods: [GET], path: /v1/models, severity: read }]
`)
    const first = await cli(['ca', 'export', '--config', forwardFile], { env })
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /^-----BEGIN CERTIFICATE-----/)
    assert.doesNotMatch(first.stdout, /PRIVATE KEY/)
    const second = await cli(['ca', 'export', '--config', forwardFile], { env })
    assert.equal(second.stdout, first.stdout, 'the CA is created once and kept in the vault')
    const pem = join(dir, 'ca.pem')
    writeFileSync(pem, first.stdout)
    const { stdout: subject } = await run('openssl', ['x509', '-in', pem, '-noout', '-subject'], { encoding: 'utf8' })
    assert.match(subject, /keyvalet interception CA/)
    const created = await cli(['session', 'create', '--config', forwardFile, '--agent', 'a', '--user', 'u', '--workspace', 'w', '--grant', 'openai:read', '--env', '--ca-file', '/etc/keyvalet/ca.pem'], { env })
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stdout, /^export HTTPS_PROXY=http:\/\/task:kvt_[0-9A-Za-z]+@127\.0\.0\.1:8789$/m)
    assert.match(created.stdout, /^export SSL_CERT_FILE=\/etc\/keyvalet\/ca\.pem$/m)
    assert.match(created.stdout, /^export NODE_EXTRA_CA_CERTS=\/etc\/keyvalet\/ca\.pem$/m)
    assert.match(created.stdout, /^export OPENAI_API_KEY=sk-placeholder-not-a-real-key$/m)
    assert.match(created.stdout, /^export NO_PROXY=''$/m, 'without listen.gateway_url nothing is exempt from the proxy')
    const reserved = await cli(['secret', 'set', 'keyvalet.ca', '--config', forwardFile], { input: 'x', env })
    assert.equal(reserved.code, 1)
    assert.match(reserved.stderr, /reserved|keyvalet's own/)
    const userToken = await cli(['secret', 'set', 'oauth.crm.0123abcd', '--config', forwardFile], { input: 'x', env })
    assert.equal(userToken.code, 1)
    assert.match(userToken.stderr, /secret names starting with oauth\. hold users' OAuth tokens/)
  })

  it('start refuses, before listening, a master key that does not open the vault', async () => {
    const forwardFile = join(dir, 'forward.yaml')
    const other = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
    const out = await cli(['start', '--config', forwardFile], { env: other, timeoutMs: 15_000 })
    assert.equal(out.code, 1, out.stdout + out.stderr)
    assert.match(out.stderr, /(interception CA|audit log's key) in the vault cannot be opened: .*master key/)
    assert.doesNotMatch(out.stdout, /listening on/)
  })

  it('demo shows the whole flow offline and exits 0', async () => {
    const out = await cli(['demo'], { timeoutMs: 30_000 })
    assert.equal(out.code, 0, out.stdout + out.stderr)
    assert.match(out.stdout, /upstream saw: +GET \/items\/42, authorization: Bearer demo-secret-/)
    assert.match(out.stdout, /sandbox got: +403 policy_denied/)
    assert.match(out.stdout, /audit verify: ok, 2 records/)
  })
})
