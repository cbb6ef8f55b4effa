/**
 * What an operator sees from the CLI: messages that say what is wrong and where to look, lists
 * without keyvalet's own records, limits on what can be minted.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { cli, MAIN } from '../helpers/cli.ts'

const CONNECTOR = `connectors:
  github:
    upstream: https://api.github.com
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`

describe('the CLI, as an operator meets it', () => {
  let dir: string
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const write = (name: string, text: string): string => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }
  const create = (file: string, ...extra: string[]) => cli(['session', 'create', '--config', file, '--agent', 'a', '--user', 'u', '--workspace', 'w', '--grant', 'github:read', ...extra], { env })

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyvalet-operator-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('secret list leaves out keyvalet.* records (the CA, the audit key) unless --all', async () => {
    const file = write('list.yaml', `version: 1\nlisten: { forward: "127.0.0.1:8789" }\ndata_dir: ./list-data\n${CONNECTOR}`)
    assert.equal((await cli(['secret', 'set', 'github-token', '--config', file], { input: 'v', env })).code, 0)
    assert.equal((await cli(['ca', 'export', '--config', file], { env })).code, 0)
    const names = async (...flags: string[]) => (JSON.parse((await cli(['secret', 'list', '--json', '--config', file, ...flags], { env })).stdout) as { name: string }[]).map((s) => s.name)
    assert.deepEqual(await names(), ['github-token'])
    assert.deepEqual((await names('--all')).sort(), ['github-token', 'keyvalet.ca'])
    const text = await cli(['secret', 'list', '--config', file], { env })
    assert.match(text.stdout, /^github-token\t/)
    assert.doesNotMatch(text.stdout, /keyvalet\./)
  })

  it('a configuration error points at docs/config.md', async () => {
    const file = write('broken.yaml', `version: 1\n${CONNECTOR.replace('severity: read', 'severity: superuser')}`)
    const out = await cli(['check', file])
    assert.equal(out.code, 1)
    assert.match(out.stderr, /^hint: .*docs\/config\.md/m)
    const missing = await cli(['check', join(dir, 'nope.yaml')])
    assert.match(missing.stderr, /^hint: .*docs\/config\.md/m)
  })

  it('--ttl: refuses zero, negative, malformed and absurd values, and anything above sessions.max_ttl, each with a clear message', async () => {
    const file = write('ttl.yaml', `version: 1\ndata_dir: ./ttl-data\nsessions: { max_ttl: 8h }\n${CONNECTOR}`)
    assert.equal((await create(file, '--ttl', '8h')).code, 0)
    const cases: [string[], RegExp][] = [
      [['--ttl', '9h'], /a ttl of 9h is longer than a session may last here \(8h, sessions\.max_ttl\)/],
      [['--ttl', '31d'], /a ttl of 31d is longer than a session may last here \(8h, sessions\.max_ttl\)/],
      [['--ttl', '0s'], /a session needs a ttl longer than 0/],
      [['--ttl=-1h'], /not a duration: "-1h"/],
      [['--ttl', '1.5h'], /not a duration: "1\.5h"/],
      [['--ttl', '99999999999999999999d'], /not a duration/],
    ]
    for (const [flags, message] of cases) {
      const out = await create(file, ...flags)
      assert.equal(out.code, 1, flags.join(' '))
      assert.match(out.stderr, message, flags.join(' '))
      assert.doesNotMatch(out.stderr, /unexpected error/)
    }
    const defaults = write('ttl-default.yaml', `version: 1\ndata_dir: ./ttl-data\n${CONNECTOR}`)
    assert.match((await create(defaults, '--ttl', '31d')).stderr, /longer than a session may last here \(30d, sessions\.max_ttl\)/)
    assert.equal((await create(defaults, '--ttl', '30d')).code, 0)
    const tooLong = write('ttl-bad.yaml', `version: 1\nsessions: { max_ttl: 400d }\n${CONNECTOR}`)
    assert.match((await cli(['check', tooLong])).stderr, /:2: sessions\.max_ttl: must be longer than 0 and at most 365d/)
  })

  it('an invalid CIDR fails check and start at its line, before anything listens', async () => {
    const file = write('cidr.yaml', `version: 1\ndata_dir: ./cidr-data\nconnectors:\n  svc:\n    upstream: https://api.example.com\n    allow_addresses: [127.0.0.1/33]\n    rules: []\n`)
    for (const args of [['check', file], ['start', '--config', file]]) {
      const out = await cli(args, { env, timeoutMs: 15_000 })
      assert.equal(out.code, 1, args[0])
      assert.match(out.stderr, /cidr\.yaml:6: connectors\.svc\.allow_addresses\[0\]: invalid CIDR "127\.0\.0\.1\/33": prefix must be a whole number from 0 to 32/, args[0])
      assert.doesNotMatch(out.stdout, /listening/)
    }
  })

  it('check lists, and start names in one line, the vault secrets the configuration names but the vault lacks', async () => {
    const file = write('secrets.yaml', `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./secrets-data
upstream_proxy: { url: "http://proxy.corp:3128", secret: proxy-login }
connectors:
  github:
    upstream: https://api.github.com
    credential: { secret: github-token, inject: bearer }
    rules: [{ id: r, methods: [GET], path: /repos/acme/app, severity: read }]
  crm:
    upstream: https://crm.example.com
    credential:
      source: oauth_client
      inject: bearer
      oauth_client: { token_url: "https://crm.example.com/token", client_id: svc, client_secret: crm-client-secret }
    rules: [{ id: r, methods: [GET], path: /v1/accounts/acme, severity: read }]
`)
    const before = await cli(['check', file])
    assert.equal(before.code, 0, before.stderr)
    assert.match(before.stdout, /^note: no database at .*keyvalet\.db yet: vault secrets not checked$/m)
    assert.equal((await cli(['secret', 'set', 'github-token', '--config', file], { input: 'v', env })).code, 0)
    const checked = await cli(['check', file])
    assert.deepEqual(checked.stdout.split('\n').filter((l) => l.startsWith('warning:')).map((l) => l.slice(l.indexOf('secrets.yaml:'))), [
      'secrets.yaml:4: upstream_proxy.secret: vault secret proxy-login is not set (keyvalet secret set proxy-login)',
      'secrets.yaml:15: connectors.crm.credential.oauth_client.client_secret: vault secret crm-client-secret is not set (keyvalet secret set crm-client-secret)',
    ])
    assert.match(checked.stdout, /2 warnings$/m)
    assert.equal((await cli(['check', file, '--strict'])).code, 1)

    const started = await startUntilListening(file)
    assert.equal(started.stderr.trim(), `warning: ${file}: vault secrets not set: proxy-login, crm-client-secret (keyvalet check ${file} lists them)`)
  })

  it('a port in use: start names the listener (gateway, forward proxy, demo upstream) and the address, and exits 1 with a hint', async () => {
    const held: Server = createServer()
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve))
    const port = (held.address() as { port: number }).port
    try {
      for (const [listen, what] of [[`{ gateway: "127.0.0.1:${port}" }`, 'gateway'], [`{ gateway: "127.0.0.1:0", forward: "127.0.0.1:${port}" }`, 'forward proxy']] as const) {
        const file = write('busy.yaml', `version: 1\nlisten: ${listen}\ndata_dir: ./busy-data\n${CONNECTOR}`)
        const out = await cli(['start', '--config', file], { env, timeoutMs: 15_000 })
        assert.equal(out.code, 1, out.stderr)
        assert.match(out.stderr, new RegExp(`keyvalet start: the ${what} cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use \\(EADDRINUSE\\)\nhint: stop what holds it .* or change listen\\.${what === 'gateway' ? 'gateway' : 'forward'} in the configuration\n$`))
      }
      const demo = write('busy-demo.yaml', `version: 1\nlisten: { gateway: "127.0.0.1:0" }\ndata_dir: ./busy-data\nconnectors:\n  demo:\n    upstream: http://127.0.0.1:${port}\n    allow_insecure: true\n    allow_addresses: [127.0.0.1/32]\n    credential: { secret: demo-token, inject: bearer }\n    rules: [{ id: r, methods: [GET], path: /items/42, severity: read }]\n`)
      const out = await cli(['start', '--config', demo, '--demo'], { env, timeoutMs: 15_000 })
      assert.equal(out.code, 1, out.stderr)
      assert.match(out.stderr, new RegExp(`keyvalet start: the demo upstream cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use \\(EADDRINUSE\\)\nhint: is another keyvalet start --demo running\\?`))
    } finally {
      held.close()
    }
  })

  /** `keyvalet start` until it listens, then stopped: what it printed. */
  async function startUntilListening(file: string): Promise<{ stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [MAIN, 'start', '--config', file], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`start did not listen: ${stdout}${stderr}`)), 15_000)
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString()
        if (/gateway listening on/.test(stdout)) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.on('close', () => reject(new Error(`start exited: ${stdout}${stderr}`)))
    })
    child.kill('SIGTERM')
    await new Promise((resolve) => child.on('close', resolve))
    return { stdout, stderr }
  }
})
