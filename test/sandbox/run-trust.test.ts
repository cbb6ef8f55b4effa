/**
 * keyvalet run: the sandbox's trust variables name a bundle of keyvalet's CA and this machine's
 * trusted CAs, so a host the forward proxy tunnels (its own certificate, from a public CA) works
 * inside as well as an intercepted one, with curl and Python.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AuditRecord } from '../../src/audit/record.ts'
import { sandboxIdentity } from '../../src/sandbox/identity.ts'
import { probeSandbox, sandboxMode } from '../../src/sandbox/sandbox.ts'
import { cli } from '../helpers/cli.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const API = 'api.example.test'
const REGISTRY = 'registry.example.test'
const SECRET = `ghp_runTrust_${randomBytes(12).toString('hex')}`

describe('keyvalet run: tunnelled and intercepted hosts both verify inside the sandbox', { timeout: 60_000 }, () => {
  const apiPki = upstreamCertificate(API)
  const publicPki = upstreamCertificate(REGISTRY)
  let api: Upstream
  let registry: Upstream
  let dns: DnsServer
  let base: string
  let file: string
  let env: Record<string, string>

  before(async () => {
    await probeSandbox(sandboxMode(), sandboxIdentity({ uid: 65534, gid: 65534 }, sandboxMode() === 'root'))
    api = await startUpstream({ tls: apiPki.tls })
    registry = await startUpstream({ tls: publicPki.tls })
    dns = await startDnsServer({ [API]: { a: ['127.0.0.1'] }, [REGISTRY]: { a: ['127.0.0.1'] } })
    base = mkdtempSync('/var/tmp/keyvalet-run-trust-')
    chmodSync(base, 0o755)
    mkdirSync(join(base, 'work'), { mode: 0o777 })
    chmodSync(join(base, 'work'), 0o777)
    writeFileSync(join(base, 'api-ca.pem'), apiPki.caPem)
    // This machine's trust store, as keyvalet's Node reads it (SSL_CERT_FILE, SSL_CERT_DIR): the
    // registry's CA stands for a public CA.
    const system = join(base, 'system-cas.pem')
    writeFileSync(system, publicPki.caPem)
    const keyFile = join(base, 'master.key')
    writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 })
    env = { KEYVALET_MASTER_KEY_FILE: keyFile, SSL_CERT_FILE: system, SSL_CERT_DIR: join(base, 'no-such-folder') }
    file = join(base, 'keyvalet.yaml')
    writeFileSync(file, `version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
data_dir: ./data
dns: { servers: ["${dns.address}"] }
tunnels:
  - { to: "${REGISTRY}:${registry.port}", allow_addresses: [127.0.0.1/32] }
connectors:
  github:
    upstream: https://${API}:${api.port}
    ca_file: api-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`)
    assert.equal((await cli(['secret', 'set', 'github-token', '--config', file], { input: SECRET, env })).code, 0)
  })
  after(async () => {
    await api?.close()
    await registry?.close()
    await dns?.close()
    if (base !== undefined) rmSync(base, { recursive: true, force: true })
  })

  it('curl and python3, with the environment keyvalet run gives them and nothing else', async () => {
    const intercepted = `https://${API}:${api.port}/repos/acme/app/issues/1`
    const tunnelled = `https://${REGISTRY}:${registry.port}/pkg`
    const script = `
for url in "$1" "$2"; do
  curl -s --max-time 10 "$url" || echo "curl failed: $?"; echo
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$url" 2>&1 | tail -n 1
done`
    const ran = await cli(['run', '--config', file, '--agent', 'bot', '--user', 'alice', '--grant', 'github:read', '--workdir', join(base, 'work'), '--', 'sh', '-c', script, 'sh', intercepted, tunnelled], { env, timeoutMs: 30_000 })
    assert.equal(ran.code, 0, ran.stderr)
    const lines = ran.stdout.trim().split('\n').filter((l) => l !== '')
    assert.equal(lines.length, 4, ran.stdout)
    for (const line of lines.slice(0, 2)) assert.match(line, /"authorization":"Bearer \*+"/, `intercepted: ${line}`)
    for (const line of lines.slice(2)) assert.match(line, /"url":"\/pkg"/, `tunnelled, its own certificate verified: ${line}`)
    assert.deepEqual(api.received.map((r) => r.headers.authorization), [`Bearer ${SECRET}`, `Bearer ${SECRET}`])
    assert.equal(registry.received.length, 2)

    const tail = await cli(['audit', 'tail', '-n', '100', '--config', file], { env })
    const records = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord)
    assert.deepEqual(records.map((r) => [r.mode, r.decision, r.reason, r.agent]), [
      ['forward', 'allow', 'rule_matched', 'bot'], ['forward', 'allow', 'rule_matched', 'bot'],
      ['forward', 'allow', 'tunnel_allowed', 'bot'], ['forward', 'allow', 'tunnel_allowed', 'bot'],
    ])
  })
})
