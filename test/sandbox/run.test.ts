import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { AuditRecord } from '../../src/audit/record.ts'
import { probeSandbox, sandboxMode } from '../../src/sandbox/sandbox.ts'
import { cli, MAIN, type CliResult } from '../helpers/cli.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const ATTACK = fileURLToPath(new URL('./attack.py', import.meta.url))
const SECRET = `ghp_runSandbox_${randomBytes(12).toString('hex')}` // random: this file is readable inside the sandbox
const HOST = 'api.example.test'
const RUN = ['--agent', 'triage-bot', '--user', 'alice', '--grant', 'github:read']

interface Attempt<T = unknown> { ok: boolean; value?: T; error?: string; errno?: number | null }
interface Report {
  allowed: Attempt<{ status: number; body: string }>
  gateway: Attempt<{ status: number; body: string }>
  denied: Attempt<{ status: number; body: string }>
  env: Record<string, string>
  env_hits: number[]
  status: Record<string, string>
  procs: Record<string, { cmdline: string[] | string; environ: string[] | string; cmdline_hits?: number[]; environ_hits?: number[] }>
  walk: { files: number; found: string[]; dirs: number }
  hidden: Record<string, Attempt<{ entries: string[] | null; size: number | null; mode: string }>>
  interfaces: string[]
  routes: string[]
  loopback_open_ports: number[]
  gateway_open_ports: number[]
  direct: Record<string, Attempt>
  dns_udp: Record<string, Attempt>
  dns_tcp: Record<string, Attempt>
  getaddrinfo: Attempt
  writes: Record<string, Attempt>
}

/** The host's own addresses, other than the loopback: the sandbox must not reach any of them. */
const hostAddresses = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address)

describe('keyvalet run: the sandbox holds the task key and nothing else, and has no way out but keyvalet', { timeout: 60_000 }, () => {
  const pki = upstreamCertificate(HOST)
  let upstream: Upstream
  let dns: DnsServer
  let base: string
  let work: string
  let file: string
  let keyFile: string
  const masterKey = randomBytes(32).toString('base64')
  let env: Record<string, string>
  let result: CliResult
  let report: Report

  before(async () => {
    // Fails loudly (never skips) where the kernel cannot make the namespaces.
    probeSandbox(sandboxMode())
    upstream = await startUpstream({ tls: pki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    // Outside /tmp (which the sandbox replaces), so that only the masks hide keyvalet's files.
    base = mkdtempSync('/var/tmp/keyvalet-run-test-')
    chmodSync(base, 0o755)
    work = join(base, 'work')
    mkdirSync(work)
    chmodSync(work, 0o777)
    keyFile = join(base, 'master.key')
    writeFileSync(keyFile, masterKey, { mode: 0o600 })
    writeFileSync(join(base, 'upstream-ca.pem'), pki.caPem)
    file = writeConfig(base, upstream.port, dns.address)
    env = { KEYVALET_MASTER_KEY_FILE: keyFile }
    const set = await cli(['secret', 'set', 'github-token', '--config', file], { input: SECRET, env })
    assert.equal(set.code, 0, set.stderr)

    const args = {
      allowed_url: `https://${HOST}:${upstream.port}/repos/acme/app/issues/1`,
      gateway_path: '/github/repos/acme/app/issues/3',
      denied_url: `https://${HOST}:${upstream.port}/repos/acme/other/pulls/1`,
      walk_seconds: 1.5, walk_first: [base, '/tmp', '/run', '/var/tmp', '/etc', '/root', '/home', '/work'],
      hidden: [join(base, 'data'), keyFile, '/root'],
      direct: [['127.0.0.1', upstream.port], ...hostAddresses.flatMap((a) => [[a, upstream.port], [a, 22], [a, 443]]), ['1.1.1.1', 443], ['169.254.169.254', 80]],
      writes: ['/x', '/etc/x', '/usr/x', '/var/tmp/x', join(base, 'x'), '/run/keyvalet/x', join(work, 'out.txt'), '/tmp/sandbox-private.txt'],
    }
    // A copy beside the config: the checkout itself may be under /tmp or a home folder, which the sandbox hides.
    const attack = join(base, 'attack.py')
    copyFileSync(ATTACK, attack)
    result = await cli(['run', '--config', file, ...RUN, '--workdir', work, '--', 'python3', attack, JSON.stringify(args)], {
      env, input: JSON.stringify([SECRET, masterKey]), timeoutMs: 30_000,
    })
    assert.equal(result.code, 0, result.stderr)
    report = JSON.parse(result.stdout) as Report
  })
  after(async () => {
    await upstream?.close()
    await dns?.close()
    if (base !== undefined) rmSync(base, { recursive: true, force: true })
  })

  let firstRecords: Promise<AuditRecord[]> | undefined
  const recordsOfFirstRun = (): Promise<AuditRecord[]> => (firstRecords ??= audit())
  const audit = async (): Promise<AuditRecord[]> => {
    const tail = await cli(['audit', 'tail', '-n', '1000', '--config', file], { env })
    assert.equal(tail.code, 0, tail.stderr)
    return tail.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord)
  }

  it('allowed requests through keyvalet work (forward proxy and gateway): the upstream gets the real credential, the sandbox a masked answer, the audit log every decision', async () => {
    assert.equal(report.allowed.value?.status, 200, JSON.stringify(report.allowed))
    assert.match(report.allowed.value.body, /"authorization":"Bearer \*+"/)
    assert.equal(report.gateway.value?.status, 200, JSON.stringify(report.gateway))
    assert.match(report.gateway.value.body, /"authorization":"Bearer \*+"/)
    assert.ok(!result.stdout.includes(SECRET))
    assert.equal(report.denied.value?.status, 403)
    assert.match(report.denied.value.body, /policy_denied/)
    assert.deepEqual(upstream.received.map((r) => [r.url, r.headers.authorization]), [
      ['/repos/acme/app/issues/1', `Bearer ${SECRET}`],
      ['/repos/acme/app/issues/3', `Bearer ${SECRET}`],
    ], 'only the allowed requests reached the upstream')
    const records = await recordsOfFirstRun()
    assert.deepEqual(records.map((r) => [r.mode, r.decision, r.reason, r.agent, r.path]), [
      ['forward', 'allow', 'rule_matched', 'triage-bot', '/repos/acme/app/issues/1'],
      ['gateway', 'allow', 'rule_matched', 'triage-bot', '/repos/acme/app/issues/3'],
      ['forward', 'deny', 'no_rule_for_path', 'triage-bot', '/repos/acme/other/pulls/1'],
    ])
  })

  it('the environment is what session create --env describes (pointed at the relay) plus PATH, HOME, LANG, TERM, and holds no secret', async () => {
    const described = await cli(['session', 'create', '--config', file, ...RUN, '--workspace', 'w', '--dotenv', '--ca-file', '/run/keyvalet/ca.pem'], { env })
    const names = described.stdout.split('\n').filter((l) => l.includes('=') && !l.startsWith('#')).map((l) => l.slice(0, l.indexOf('=')))
    // KEYVALET_GATEWAY: the sandbox's gateway relay is its listen.gateway_url (this config has none).
    const expected = [...names, 'KEYVALET_GATEWAY', 'PATH', 'HOME', 'LANG', 'PWD'].sort()
    assert.deepEqual(Object.keys(report.env).sort(), expected)
    const key = report.env.KEYVALET_TASK_KEY
    assert.match(key ?? '', /^kvt_/)
    assert.equal(report.env.HTTPS_PROXY, `http://task:${key}@127.0.0.1:8789`)
    assert.equal(report.env.KEYVALET_GATEWAY, 'http://127.0.0.2:8787')
    assert.equal(report.env.NO_PROXY, '127.0.0.2', 'the gateway is reached directly, not through the forward proxy')
    assert.equal(report.env.SSL_CERT_FILE, '/run/keyvalet/ca.pem')
    assert.equal(report.env.GITHUB_TOKEN, 'ghp_placeholder_for_the_sandbox')
    assert.deepEqual(report.env_hits, [])
  })

  it('no readable file holds the real secret or the master key; the data folder, the key file and the home folder are hidden', () => {
    assert.deepEqual(report.walk.found, [])
    assert.ok(report.walk.files > 1000, `the walk read ${report.walk.files} files`)
    const data = report.hidden[join(base, 'data')]
    assert.ok(data?.ok === false ? data.error === 'PermissionError' : data?.value?.entries?.length === 0, JSON.stringify(data))
    assert.ok(existsSync(join(base, 'data', 'keyvalet.db')), 'on the host, the folder the sandbox saw empty holds the database')
    assert.equal(report.hidden[keyFile]?.value?.mode.slice(0, 4), '0o20', 'the key file is /dev/null inside (a character device)')
    assert.equal(report.hidden['/root']?.ok === false || report.hidden['/root']?.value?.entries?.length === 0, true)
  })

  it('/proc shows the sandbox’s own processes only: the relay as pid 1 and the command', () => {
    const procs = Object.entries(report.procs)
    assert.ok(procs.length <= 3, JSON.stringify(Object.keys(report.procs)))
    assert.deepEqual((report.procs['1']?.cmdline as string[]).slice(0, 2), ['/run/keyvalet/node', '/run/keyvalet/relay.ts'])
    for (const [pid, p] of procs) {
      const cmdline = Array.isArray(p.cmdline) ? p.cmdline.join(' ') : p.cmdline
      assert.ok(pid === '1' || /^python3 /.test(cmdline), cmdline)
      assert.ok(!cmdline.includes('main.ts'), 'keyvalet itself is not visible')
      assert.equal(p.environ_hits, undefined)
      assert.equal(p.cmdline_hits, undefined)
    }
  })

  it('runs as uid 65534 with no capabilities and no new privileges', () => {
    assert.equal(report.status.Uid, '65534\t65534\t65534\t65534')
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(report.status[set], '0000000000000000', set)
    assert.equal(report.status.NoNewPrivs, '1')
  })

  it('the network is a loopback and nothing else: no route, and the relay (forward proxy, and gateway on 127.0.0.2) is all that listens', () => {
    assert.deepEqual(report.interfaces, ['lo'])
    assert.deepEqual(report.routes, [])
    assert.deepEqual(report.loopback_open_ports, [8789])
    assert.deepEqual(report.gateway_open_ports, [8787])
  })

  it('direct connections to the upstream, the host and the internet fail, and nothing reaches the upstream', () => {
    for (const [target, attempt] of Object.entries(report.direct)) {
      assert.equal(attempt.ok, false, target)
      assert.ok(attempt.errno === 111 || attempt.errno === 101, `${target}: ${JSON.stringify(attempt)}`) // refused (own loopback) or unreachable
    }
    assert.equal(upstream.received.length, 2, 'only the two allowed requests, through keyvalet')
  })

  it('names do not resolve: no resolver answers over UDP or TCP port 53', async () => {
    assert.ok(Object.keys(report.dns_udp).length >= 4)
    for (const [server, attempt] of [...Object.entries(report.dns_udp), ...Object.entries(report.dns_tcp)]) assert.equal(attempt.ok, false, server)
    assert.equal(report.getaddrinfo.ok, false)
    assert.equal((await recordsOfFirstRun()).length, 3, 'nothing else reached keyvalet')
  })

  it('writes outside the working folder and /tmp fail; inside the working folder they persist on the host; /tmp is private', () => {
    for (const path of ['/x', '/etc/x', '/usr/x', '/var/tmp/x', join(base, 'x'), '/run/keyvalet/x']) {
      const attempt = report.writes[path]
      assert.equal(attempt?.ok, false, path)
      assert.ok(attempt?.errno === 30 || attempt?.errno === 13, `${path}: ${JSON.stringify(attempt)}`) // read-only (or not ours)
      assert.ok(!existsSync(path), `${path} exists on the host`)
    }
    assert.equal(report.writes[join(work, 'out.txt')]?.ok, true)
    assert.equal(readFileSync(join(work, 'out.txt'), 'utf8'), 'written from the sandbox')
    assert.equal(report.writes['/tmp/sandbox-private.txt']?.ok, true)
    assert.ok(!existsSync('/tmp/sandbox-private.txt'))
  })

  it('the task key is revoked when keyvalet run exits: a later request with it is refused and audited', async () => {
    const oldKey = report.env.KEYVALET_TASK_KEY ?? ''
    const sessions = JSON.parse((await cli(['session', 'list', '--json', '--config', file], { env })).stdout) as { id: string; state: string; agent: string }[]
    assert.deepEqual(sessions.filter((s) => s.agent === 'triage-bot').map((s) => s.state).slice(0, 1), ['revoked'])
    // A keyvalet that keeps running, and a second sandbox attached to it (--attach).
    const kv = await startKeyvalet(file, env)
    try {
      const script = `
import json, os, socket, sys, urllib.request
old, gateway, forward, hosts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
out = {}
def status(url, proxy):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy}))
    try:
        return opener.open(url, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return type(e).__name__ + ": " + str(e)
url = "https://${HOST}:${upstream.port}/repos/acme/app/issues/2"
out["own_key"] = status(url, os.environ["HTTPS_PROXY"])
out["old_key"] = status(url, "http://task:%s@127.0.0.1:8789" % old)
def tcp(h, p):
    try:
        socket.create_connection((h, p), timeout=2).close()
        return "connected"
    except OSError as e:
        return e.errno
out["listeners"] = {f"{h}:{p}": tcp(h, p) for h in ["127.0.0.1"] + hosts for p in (gateway, forward)}
print(json.dumps(out))
`
      const attached = await cli(['run', '--config', file, ...RUN, '--workdir', work, '--attach', kv.forward, '--', 'python3', '-c', script, oldKey, String(kv.gatewayPort), String(kv.forwardPort), ...hostAddresses], { env, timeoutMs: 20_000 })
      assert.equal(attached.code, 0, attached.stderr)
      const seen = JSON.parse(attached.stdout) as { own_key: number; old_key: number | string; listeners: Record<string, number | string> }
      assert.equal(seen.own_key, 200)
      assert.match(String(seen.old_key), /Tunnel connection failed: 407 /)
      for (const [target, outcome] of Object.entries(seen.listeners)) assert.ok(outcome === 111 || outcome === 101, `${target}: ${outcome}`)
    } finally {
      await kv.stop()
    }
    assert.equal(upstream.received.at(-1)?.url, '/repos/acme/app/issues/2')
    const records = await audit()
    const refused = records.find((r) => r.error === 'task_key_revoked')
    assert.ok(refused !== undefined, JSON.stringify(records.map((r) => r.error)))
    assert.equal(refused.mode, 'forward')
    assert.ok(!JSON.stringify(records).includes(oldKey))
  })

  it('revokes the key when the command is killed by a signal, and exits with 128 + the signal (or the command’s own code)', async () => {
    // SIGTERM to keyvalet run reaches the command, which dies of it; meanwhile two more runs.
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file, ...RUN, '--workdir', work, '--', 'sh', '-c', 'echo started; exec sleep 30'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    const stderr = collect(child, 'stderr')
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const [killedItself, exited] = await Promise.all([
      cli(['run', '--config', file, ...RUN, '--workdir', work, '--', 'sh', '-c', 'kill -KILL $$'], { env }),
      cli(['run', '--config', file, ...RUN, '--workdir', work, '--', 'sh', '-c', 'exit 7'], { env }),
      waitFor(child, 'stdout', /started/).then(() => child.kill('SIGTERM')),
    ])
    assert.equal(killedItself.code, 137, killedItself.stderr)
    assert.equal(exited.code, 7, exited.stderr)
    assert.equal(await closed, 143, stderr())
    assert.match(stderr(), /sh exited with 143; task key of ses_\w+ revoked/)

    const ids = [killedItself.stderr, exited.stderr, stderr()].map((text) => /session (ses_\w+)/.exec(text)?.[1])
    const sessions = JSON.parse((await cli(['session', 'list', '--json', '--config', file], { env })).stdout) as { id: string; state: string }[]
    for (const id of ids) assert.equal(sessions.find((s) => s.id === id)?.state, 'revoked', `${id}`)
  })
})

const USER = 4242 // an unused uid: keyvalet's user for the unprivileged test
/** Why the unprivileged test cannot run here, if it cannot: it runs this checkout as another user. */
function unprivilegedSkip(): string | false {
  if (process.getuid?.() !== 0) return 'this whole file already runs unprivileged'
  const probe = spawnSync('setpriv', ['--reuid', String(USER), '--regid', String(USER), '--clear-groups', '--', process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(MAIN)})`])
  return probe.status === 0 ? false : `this checkout (${MAIN}) is not readable by another user, so keyvalet cannot run from it unprivileged`
}

describe('keyvalet run without root: the same sandbox in a user namespace', { timeout: 30_000, skip: unprivilegedSkip() }, () => {
  it('keyvalet as an ordinary user: the command runs as uid 65534 of a user namespace, without capabilities, with only a loopback, and its request works', async () => {
    const pki = upstreamCertificate(HOST)
    const upstream = await startUpstream({ tls: pki.tls })
    const dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    const base = mkdtempSync('/var/tmp/keyvalet-run-user-')
    try {
      writeFileSync(join(base, 'upstream-ca.pem'), pki.caPem)
      const file = writeConfig(base, upstream.port, dns.address)
      const keyFile = join(base, 'master.key')
      writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 })
      chmodSync(base, 0o755)
      const as = (args: string[], input = ''): Promise<CliResult> => new Promise((resolve, reject) => {
        const child = spawn('setpriv', ['--reuid', String(USER), '--regid', String(USER), '--clear-groups', '--', process.execPath, MAIN, ...args], {
          cwd: base, env: { PATH: process.env.PATH, HOME: base, KEYVALET_MASTER_KEY_FILE: keyFile }, stdio: ['pipe', 'pipe', 'pipe'],
        })
        const stdout = collect(child, 'stdout')
        const stderr = collect(child, 'stderr')
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
        child.on('error', reject).on('close', (code) => {
          clearTimeout(timer)
          resolve({ code, stdout: stdout(), stderr: stderr() })
        })
        child.stdin?.end(input)
      })
      spawnSync('chown', ['-R', `${USER}:${USER}`, base])
      const secret = `ghp_userns_${randomBytes(8).toString('hex')}`
      assert.equal((await as(['secret', 'set', 'github-token', '--config', file], secret)).code, 0)
      const script = `
import json, os, socket, urllib.request
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
with urllib.request.urlopen("https://${HOST}:${upstream.port}/repos/acme/app/issues/9", timeout=10) as r:
    body = r.read().decode()
print(json.dumps({"uid": status["Uid"], "caps": [status[k] for k in ("CapPrm", "CapEff", "CapBnd")], "nnp": status["NoNewPrivs"],
  "interfaces": [n for _, n in socket.if_nameindex()], "pids": [p for p in os.listdir("/proc") if p.isdigit()],
  "key_file": oct(os.stat(${JSON.stringify(keyFile)}).st_mode), "data": os.listdir(${JSON.stringify(join(base, 'data'))}) if os.access(${JSON.stringify(join(base, 'data'))}, os.R_OK) else "unreadable",
  "body": body}))
`
      const ran = await as(['run', '--config', file, ...RUN, '--workdir', base, '--', 'python3', '-c', script])
      assert.equal(ran.code, 0, ran.stderr)
      assert.match(ran.stderr, /in a user namespace/)
      const seen = JSON.parse(ran.stdout) as { uid: string; caps: string[]; nnp: string; interfaces: string[]; pids: string[]; key_file: string; data: string[] | string; body: string }
      assert.equal(seen.uid, '65534\t65534\t65534\t65534')
      assert.deepEqual(seen.caps, ['0000000000000000', '0000000000000000', '0000000000000000'])
      assert.equal(seen.nnp, '1')
      assert.deepEqual(seen.interfaces, ['lo'])
      assert.ok(seen.pids.length <= 3, seen.pids.join(' '))
      assert.equal(seen.key_file.slice(0, 4), '0o20', 'the key file is /dev/null inside')
      assert.ok(seen.data === 'unreadable' || seen.data.length === 0, String(seen.data))
      assert.match(seen.body, /"authorization":"Bearer \*+"/)
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${secret}`)
    } finally {
      await upstream.close()
      await dns.close()
      rmSync(base, { recursive: true, force: true })
    }
  })

  it('fails before minting anything, with one clear line, where the kernel refuses the namespaces', () => {
    const base = mkdtempSync('/var/tmp/keyvalet-run-refused-')
    try {
      chmodSync(base, 0o755)
      writeFileSync(join(base, 'keyvalet.yaml'), 'version: 1\nconnectors: {}\n', { mode: 0o644 })
      // A user namespace whose limit (per namespace) leaves keyvalet's user none to create.
      const refused = spawnSync('unshare', ['--user', '--map-root-user', 'sh', '-c', 'echo 1 > /proc/sys/user/max_user_namespaces && exec unshare --user --map-user=4242 --map-group=4242 "$@"', 'sh',
        process.execPath, MAIN, 'run', '--config', join(base, 'keyvalet.yaml'), ...RUN, '--', 'true'], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 15_000 })
      assert.equal(refused.status, 1, refused.stderr)
      assert.match(refused.stderr, /^keyvalet run: the kernel does not let keyvalet make the sandbox's namespaces \(unshare --user .*\)\nhint: run as root, or allow unprivileged user namespaces/)
      assert.ok(!existsSync(join(base, 'data')), 'nothing was opened or minted')
    } finally {
      rmSync(base, { recursive: true, force: true })
    }
  })
})

/** keyvalet's configuration for these tests, in `base`, with the upstream's CA beside it. */
function writeConfig(base: string, upstreamPort: number, dnsAddress: string): string {
  const file = join(base, 'keyvalet.yaml')
  writeFileSync(file, `version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
data_dir: ./data
dns: { servers: ["${dnsAddress}"] }
connectors:
  github:
    upstream: https://${HOST}:${upstreamPort}
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    placeholder: ghp_placeholder_for_the_sandbox
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
`)
  return file
}

function collect(child: ChildProcess, stream: 'stdout' | 'stderr'): () => string {
  let text = ''
  child[stream]?.on('data', (c: Buffer) => { text += c.toString() })
  return () => text
}

function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${stream}: ${text}`)), 15_000)
    child[stream]?.on('data', (c: Buffer) => {
      text += c.toString()
      const match = pattern.exec(text)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match)
      }
    })
  })
}

/** `keyvalet start` as a subprocess on the same configuration and data folder. */
async function startKeyvalet(file: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN, 'start', '--config', file], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const [, gatewayPort, forwardPort] = await waitFor(child, 'stdout', /gateway listening on http:\/\/127\.0\.0\.1:(\d+)[\s\S]*forward proxy listening on http:\/\/127\.0\.0\.1:(\d+)/)
  return {
    gatewayPort: Number(gatewayPort), forwardPort: Number(forwardPort), forward: `127.0.0.1:${forwardPort}`,
    stop: () => new Promise<void>((resolve) => {
      child.on('close', () => resolve())
      child.kill('SIGTERM')
    }),
  }
}
