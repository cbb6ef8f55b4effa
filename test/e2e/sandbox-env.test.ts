/**
 * What `session create --env` gives a sandbox, used as a sandbox uses it: the lines `eval`ed by
 * a shell, then curl, Python and Node with nothing else. Tunnelled hosts keep their own (public)
 * certificates, so the trust variables must hold keyvalet's CA *and* the public CAs; and NO_PROXY
 * must exempt the gateway and nothing else on its machine.
 */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { cli } from '../helpers/cli.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const run = promisify(execFile)
const SECRET = 'ghp_sandboxEnvSecret_0123456789abcdef'
const API = 'api.example.test'
const REGISTRY = 'registry.example.test'

describe('session create --env, as a sandbox uses it', () => {
  const apiPki = upstreamCertificate(API)
  // The tunnelled host's CA stands for a public CA: it is in the "system" store the bundle is made from, not in keyvalet's configuration.
  const publicPki = upstreamCertificate(REGISTRY)
  let api: Upstream
  let registry: Upstream
  let elsewhere: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let envFile: string
  let bundle: string
  let gatewayPort: number

  before(async () => {
    api = await startUpstream({ tls: apiPki.tls })
    registry = await startUpstream({ tls: publicPki.tls })
    elsewhere = await startUpstream()
    dns = await startDnsServer({ [API]: { a: ['127.0.0.1'] }, [REGISTRY]: { a: ['127.0.0.1'] } })
    const config = `version: 1
dns: { servers: ["${dns.address}"] }
tunnels:
  - { to: "${REGISTRY}:${registry.port}", allow_addresses: [127.0.0.1/32] }
connectors:
  github:
    upstream: https://${API}:${api.port}
    ca_file: api-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    placeholder: ghp_placeholder_for_the_sandbox
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`
    kv = await startKeyvalet(`${config}listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }\n`, { files: { 'api-ca.pem': apiPki.caPem } })
    await kv.setSecret('github-token', SECRET)
    gatewayPort = Number(new URL(kv.url).port)
    // The same keyvalet (data folder, CA) as the CLI sees it, with the addresses sandboxes use:
    // the gateway under a name of its own (localhost stands in for it: /etc/hosts resolves it).
    const file = join(kv.dir, 'sandboxes.yaml')
    writeFileSync(file, `${config}listen:
  gateway: "127.0.0.1:${gatewayPort}"
  forward: "127.0.0.1:${new URL(kv.forwardUrl ?? '').port}"
  gateway_url: http://localhost:${gatewayPort}
`)
    const env = { KEYVALET_MASTER_KEY: kv.masterKey }
    const system = join(kv.dir, 'system-cas.pem')
    writeFileSync(system, publicPki.caPem)
    bundle = join(kv.dir, 'ca-bundle.pem')
    const bundled = await cli(['ca', 'bundle', '--base', system, '--out', bundle, '--config', file], { env })
    assert.equal(bundled.code, 0, bundled.stderr)
    assert.match(bundled.stderr, /wrote .*ca-bundle\.pem: keyvalet's CA and 1 CA certificates from .*system-cas\.pem/)
    const created = await cli(['session', 'create', '--config', file, '--agent', 'bot', '--user', 'alice', '--workspace', 'acme', '--grant', 'github:read', '--env', '--ca-file', bundle], { env })
    assert.equal(created.code, 0, created.stderr)
    envFile = join(kv.dir, 'sandbox.env')
    writeFileSync(envFile, created.stdout)
  })
  after(async () => {
    await kv.close()
    await api.close()
    await registry.close()
    await elsewhere.close()
    await dns.close()
  })

  /** A command run by `sh` with nothing in its environment but PATH and the --env lines. */
  const sandboxed = async (script: string, ...args: string[]): Promise<string> => {
    const { stdout } = await run('sh', ['-c', `eval "$(cat "$0")"; ${script}`, envFile, ...args], { env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 30_000 })
    return stdout
  }
  const curl = (url: string, ...flags: string[]) => sandboxed('exec curl -s --max-time 10 "$@"', ...flags, url)
  const python = (url: string, header = '') => sandboxed(`exec python3 -c '
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]: req.add_header("Authorization", sys.argv[2])
try:
    with urllib.request.urlopen(req, timeout=10) as r: print(r.status, r.read().decode())
except urllib.error.HTTPError as e: print(e.code, e.read().decode())
' "$@"`, url, header)

  it('prints export lines a shell can eval, with the session id in a comment', () => {
    const text = readFileSync(envFile, 'utf8')
    assert.match(text, /^# keyvalet session ses_[0-9a-f]+ for agent bot \(user alice, workspace acme, task tsk_[0-9a-f]+\), expires \d{4}-/)
    for (const line of text.trim().split('\n')) assert.match(line, /^(# |export [A-Za-z_]+=)/, line)
    assert.match(text, new RegExp(`^export SSL_CERT_FILE=${bundle}$`, 'm'))
    assert.match(text, /^export NO_PROXY=localhost$/m)
    assert.match(text, new RegExp(`^export KEYVALET_GATEWAY=http://localhost:${gatewayPort}$`, 'm'))
  })

  it('the bundle holds keyvalet\'s CA and the public CAs', () => {
    const pem = readFileSync(bundle, 'utf8')
    assert.equal(pem.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2)
    assert.ok(pem.includes(kv.caCertPem?.trim().split('\n')[1] ?? 'missing'), "keyvalet's CA")
    assert.ok(pem.includes(publicPki.caPem.trim().split('\n')[1] ?? 'missing'), 'the public CA')
  })

  const requests = (url: string, header = '') => sandboxed(`exec python3 -c 'import sys, requests; r = requests.get(sys.argv[1], headers={"Authorization": sys.argv[2]} if sys.argv[2] else {}, timeout=10); print(r.status_code, r.text)' "$@"`, url, header)
  const noRequests = spawnSync('python3', ['-c', 'import requests']).status === 0 ? false : 'python3 has no requests module here'
  for (const [tool, get, skip] of [['curl', (url: string) => curl(url), false], ['python3 urllib', (url: string) => python(url), false], ['python3 requests', requests, noRequests]] as const) {
    it(`${tool}: an intercepted host and a tunnelled one both verify, through keyvalet`, { skip }, async () => {
      const before = { api: api.received.length, registry: registry.received.length }
      const intercepted = await get(`https://${API}:${api.port}/repos/acme/app/issues/1`)
      assert.match(intercepted, /"authorization":"Bearer \*+"/, 'the answer, with the credential masked')
      assert.equal(api.received.length, before.api + 1)
      assert.equal(api.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      const tunnelled = await get(`https://${REGISTRY}:${registry.port}/pkg`)
      assert.match(tunnelled, /"url":"\/pkg"/, `the registry's own certificate verified: ${tunnelled}`)
      assert.equal(registry.received.length, before.registry + 1)
      const records = (await kv.audit()).slice(-2)
      assert.deepEqual(records.map((r) => [r.mode, r.decision, r.reason, r.agent]), [['forward', 'allow', 'rule_matched', 'bot'], ['forward', 'allow', 'tunnel_allowed', 'bot']])
    })
  }

  it('another port of the gateway\'s machine goes through the forward proxy and is refused; the gateway base URL is reached directly', async () => {
    const other = `http://127.0.0.1:${elsewhere.port}/admin`
    const nodeFetch = (url: string, auth = '') => sandboxed(`exec ${process.execPath} -e 'fetch(process.argv[1], { headers: process.argv[2] ? { authorization: process.argv[2] } : {} }).then(async (r) => console.log(r.status, await r.text()), (e) => console.log(e.cause?.cause?.message ?? e.message))' "$@"`, url, auth)
    // Node's proxy agent tunnels http:// too (CONNECT), so it sees the refusal as the CONNECT's 403.
    const tools = [['curl', (url: string) => curl(url), /destination_refused/], ['python3', (url: string) => python(url), /destination_refused/], ['node', (url: string) => nodeFetch(url), /Proxy response \(403\)/]] as const
    for (const [tool, get, refused] of noRequests === false ? [...tools, ['python3 requests', (url: string) => requests(url), /destination_refused/] as const] : tools) {
      const before = (await kv.audit()).length
      const out = await get(other)
      assert.match(out, refused, `${tool}: ${out}`)
      const record = (await kv.audit()).at(-1)
      assert.equal((await kv.audit()).length, before + 1, tool)
      assert.deepEqual([record?.mode, record?.decision, record?.error, record?.agent], ['forward', 'deny', 'destination_refused', 'bot'], tool)
    }
    assert.equal(elsewhere.received.length, 0, 'the other service on the gateway\'s machine was never reached')

    const url = `http://localhost:${gatewayPort}/github/repos/acme/app/issues/7`
    const bearer = (await sandboxed('printf %s "$KEYVALET_TASK_KEY"')).trim()
    for (const [tool, out] of [
      ['curl', await sandboxed('exec curl -s --max-time 10 -H "Authorization: Bearer $KEYVALET_TASK_KEY" "$KEYVALET_GATEWAY/github/repos/acme/app/issues/7"')],
      ['python3', await python(url, `Bearer ${bearer}`)],
      ['node', await nodeFetch(url, `Bearer ${bearer}`)],
      ...(noRequests === false ? [['python3 requests', await requests(url, `Bearer ${bearer}`)] as const] : []),
    ] as const) {
      assert.match(out, /"url":"\/repos\/acme\/app\/issues\/7"/, `${tool}: ${out}`)
      assert.equal(api.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)
      assert.deepEqual([(await kv.audit()).at(-1)?.mode, (await kv.audit()).at(-1)?.decision], ['gateway', 'allow'], tool)
    }
  })
})
