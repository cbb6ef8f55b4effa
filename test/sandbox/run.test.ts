import { Approvals } from '../../src/approvals/approvals.ts'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createAdminServer, type AdminServer } from '../../src/admin/server.ts'
import { AdminTokens } from '../../src/admin/tokens.ts'
import { AuditWriter } from '../../src/audit/audit-writer.ts'
import type { AuditRecord } from '../../src/audit/record.ts'
import { loadConfig } from '../../src/config/load.ts'
import { openRuntime, type Runtime } from '../../src/runtime.ts'
import { sandboxIdentity } from '../../src/sandbox/identity.ts'
import { probeSandbox, sandboxMode } from '../../src/sandbox/sandbox.ts'
import { REFUSED, SYSCALL_TABLES } from '../../src/sandbox/seccomp.ts'
import { ETC_FROM_HOST, GENERATED } from '../../src/sandbox/view.ts'
import { cli, MAIN, type CliResult } from '../helpers/cli.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { collect, HOST, RUN, waitFor, writeConfig } from './fixture.ts'

const ATTACK = fileURLToPath(new URL('./attack.py', import.meta.url))
const CONFINE = fileURLToPath(new URL('./confine.py', import.meta.url))
const HEAP_REPORT = fileURLToPath(new URL('../helpers/heap-report.ts', import.meta.url))
const SECRET = `ghp_runSandbox_${randomBytes(12).toString('hex')}` // random: this file is readable inside the sandbox

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

interface Confined {
  fds: number[]
  seccomp: string
  sockets: Record<string, string>
  vsock_python: string[]
  unshare_U: { code: number; stderr: string }
  calls: Record<string, string>
  every_refused: Record<string, string>
  x32: { code: number; stdout: string }
  root: string[]
  etc: string[]
  passwd: string[]
  visible: Record<string, boolean>
  bound: Record<string, string[] | string>
  bound_writes: Record<string, string>
  home: { path: string; mode: string; mine: boolean }
  tools: Record<'curl' | 'git' | 'node' | 'id', { code: number | null; stdout: string; stderr: string }>
}

const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')

function lexists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}

/** The host's own addresses, other than the loopback: the sandbox must not reach any of them. */
const hostAddresses = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address)

describe('keyvalet run: the sandbox holds the task key and nothing else, and has no way out but keyvalet', { timeout: 180_000 }, () => {
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
  // keyvalet's admin listener on every address of this machine (0.0.0.0), as a careless operator might configure it.
  let admin: { server: AdminServer; runtime: Runtime; audit: AuditWriter; port: number } | undefined

  before(async () => {
    // Fails loudly (never skips) where the kernel cannot make the sandbox.
    await probeSandbox(sandboxMode(), sandboxIdentity({ uid: 65534, gid: 65534 }, sandboxMode() === 'root'))
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

    const adminConfig = { ...loadConfig(file), admin: { host: '0.0.0.0', port: 0 } }
    const runtime = await openRuntime(adminConfig, { env, createMasterKey: false })
    const audit = await AuditWriter.start({ store: runtime.storeLocation, key: await runtime.openAuditKey(), reserveBytes: adminConfig.auditReserveBytes })
    const server = createAdminServer({
      config: () => adminConfig, reloadConfig: () => Promise.reject(new Error('this test does not reload')), openAuditKey: () => runtime.openAuditKey(), sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log: { info() {}, warn() {}, error() {} }, clock: Date.now,
      listening: { gateway: 'http://127.0.0.1:8787', forward: undefined }, adminTokens: new AdminTokens(runtime.store.adminTokens, Date.now),
      approvals: new Approvals({ repo: runtime.store.approvals, clock: Date.now, log: { info() {}, warn() {}, error() {} } }),
      // Only reachability is tested here: no metrics, and no data plane for /readyz to look at.
      metrics: undefined, proxy: { stats: () => { throw new Error('this test runs the admin listener without a data plane') } },
    })
    admin = { server, runtime, audit, port: Number(new URL((await server.listen()).url).port) }
    const args = {
      allowed_url: `https://${HOST}:${upstream.port}/repos/acme/app/issues/1`,
      gateway_path: '/github/repos/acme/app/issues/3',
      denied_url: `https://${HOST}:${upstream.port}/repos/acme/other/pulls/1`,
      walk_seconds: 1.5, walk_first: [base, '/tmp', '/run', '/var/tmp', '/etc', '/root', '/home', '/work'],
      hidden: [join(base, 'data'), keyFile, '/root'],
      direct: [['127.0.0.1', upstream.port], ...hostAddresses.flatMap((a) => [[a, upstream.port], [a, 22], [a, 443]]), ['1.1.1.1', 443], ['169.254.169.254', 80], ...['127.0.0.1', ...hostAddresses].map((a) => [a, admin?.port])],
      writes: ['/x', '/etc/x', '/usr/x', '/var/tmp/x', join(base, 'x'), '/run/keyvalet/x', join(work, 'out.txt'), '/tmp/sandbox-private.txt'],
    }
    // Copies beside the config, which the sandbox sees only when bound: not the checkout.
    mkdirSync(join(base, 'scripts'))
    copyFileSync(ATTACK, join(base, 'scripts', 'attack.py'))
    copyFileSync(CONFINE, join(base, 'scripts', 'confine.py'))
    // The whole folder of keyvalet's files bound read-only (--ro-bind): only the masks hide its data folder and key file.
    result = await cli(['run', '--config', file, ...RUN, '--workdir', work, '--ro-bind', base, '--', 'python3', join(base, 'scripts', 'attack.py'), JSON.stringify(args)], {
      env, input: JSON.stringify([SECRET, masterKey]), timeoutMs: 30_000,
    })
    assert.equal(result.code, 0, result.stderr)
    report = JSON.parse(result.stdout) as Report
  })
  after(async () => {
    await admin?.server.close()
    await admin?.audit.close()
    await admin?.runtime.close()
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
    assert.equal(report.env.HOME, '/home/sandbox')
    assert.deepEqual(report.env_hits, [])
  })

  it('no readable file holds the real secret or the master key; the data folder and the key file are hidden even in a folder bound into the sandbox', () => {
    assert.deepEqual(report.walk.found, [])
    assert.ok(report.walk.files > 1000, `the walk read ${report.walk.files} files`)
    const data = report.hidden[join(base, 'data')]
    assert.ok(data?.ok === false ? data.error === 'PermissionError' : data?.value?.entries?.length === 0, JSON.stringify(data))
    assert.ok(existsSync(join(base, 'data', 'keyvalet.db')), 'on the host, the folder the sandbox saw empty holds the database')
    assert.equal(report.hidden[keyFile]?.value?.mode.slice(0, 4), '0o20', 'the key file is /dev/null inside (a character device)')
    assert.equal(report.hidden['/root']?.ok === false || report.hidden['/root']?.value?.entries?.length === 0, true)
  })

  it('/proc shows the sandbox’s own processes only: bubblewrap’s pid 1, the relay and the command', () => {
    const procs = Object.entries(report.procs)
    assert.ok(procs.length <= 3, JSON.stringify(Object.keys(report.procs)))
    assert.deepEqual((report.procs['1']?.cmdline as string[]).slice(0, 4), ['bwrap', '--args', '3', '--'], 'its options, host paths included, came through a pipe')
    assert.deepEqual((report.procs['2']?.cmdline as string[]).slice(0, 2), ['/run/keyvalet/node', '/run/keyvalet/relay.ts'])
    assert.equal(report.procs['1']?.environ, 'PermissionError', 'pid 1 is not the sandbox’s uid')
    for (const [pid, p] of procs) {
      const cmdline = Array.isArray(p.cmdline) ? p.cmdline.join(' ') : p.cmdline
      assert.ok(pid === '1' || pid === '2' || /^python3 /.test(cmdline), cmdline)
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

  it('the admin listener, on every address of the host, is out of reach: its port refuses on the sandbox\'s own loopback and the host\'s addresses are unreachable', async () => {
    const attempts = Object.entries(report.direct).filter(([target]) => target.endsWith(`:${admin?.port}`))
    assert.equal(attempts.length, 1 + hostAddresses.length)
    for (const [target, attempt] of attempts) assert.ok(!attempt.ok && (attempt.errno === 111 || attempt.errno === 101), `${target}: ${JSON.stringify(attempt)}`)
    assert.equal((await recordsOfFirstRun()).filter((r) => r.mode === 'admin').length, 0, 'no admin call was made')
  })

  it('names do not resolve: no resolver answers over UDP or TCP port 53', async () => {
    assert.ok(Object.keys(report.dns_udp).length >= 4)
    for (const [server, attempt] of [...Object.entries(report.dns_udp), ...Object.entries(report.dns_tcp)]) assert.equal(attempt.ok, false, server)
    assert.equal(report.getaddrinfo.ok, false)
    assert.equal((await recordsOfFirstRun()).length, 3, 'nothing else reached keyvalet')
  })

  it('writes outside the working folder, /tmp, /var/tmp and HOME fail; inside the working folder they persist on the host; /tmp and /var/tmp are private', () => {
    for (const path of ['/x', '/etc/x', '/usr/x', join(base, 'x'), '/run/keyvalet/x']) {
      const attempt = report.writes[path]
      assert.equal(attempt?.ok, false, path)
      assert.ok(attempt?.errno === 30 || attempt?.errno === 13, `${path}: ${JSON.stringify(attempt)}`) // read-only (or not ours)
      assert.ok(!existsSync(path), `${path} exists on the host`)
    }
    assert.equal(report.writes[join(work, 'out.txt')]?.ok, true)
    assert.equal(readFileSync(join(work, 'out.txt'), 'utf8'), 'written from the sandbox')
    for (const path of ['/tmp/sandbox-private.txt', '/var/tmp/x']) {
      assert.equal(report.writes[path]?.ok, true, path)
      assert.ok(!existsSync(path), `${path} exists on the host`)
    }
  })

  // A second run: what the system call filter refuses, what the filesystem shows, ordinary tools.
  let confinedRun: Promise<Confined> | undefined
  const confined = (): Promise<Confined> => (confinedRun ??= (async () => {
    mkdirSync(join(base, 'outside'))
    writeFileSync(join(base, 'outside', 'note.txt'), 'world-readable, outside the working folder', { mode: 0o644 })
    const args = {
      numbers: SYSCALL_TABLES[process.arch]?.numbers,
      refused: REFUSED,
      url: `https://${HOST}:${upstream.port}/repos/acme/app/issues/4`,
      invisible: [join(base, 'outside', 'note.txt'), join(base, 'outside'), file, CHECKOUT, homedir(), '/root', '/work', '/opt', '/srv', '/mnt', '/boot', '/sys', '/var/lib', '/var/log',
        '/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/etc/ssh', '/etc/gitconfig', '/etc/environment', '/etc/profile', '/etc/machine-id', '/run/user'],
      bound: [join(base, 'scripts')],
      bound_writes: [join(base, 'shared', 'from-sandbox.txt'), join(base, 'scripts', 'from-sandbox.txt')],
    }
    mkdirSync(join(base, 'shared'))
    chmodSync(join(base, 'shared'), 0o777)
    // keyvalet run is given one more descriptor than its standard ones, as a careless parent would.
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file, ...RUN, '--workdir', work, '--ro-bind', join(base, 'scripts'), '--bind', join(base, 'shared'), '--', 'python3', join(base, 'scripts', 'confine.py'), JSON.stringify(args)], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe'],
    })
    const stdout = collect(child, 'stdout')
    const stderr = collect(child, 'stderr')
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    const code = await new Promise((resolve) => child.on('close', resolve)).finally(() => clearTimeout(timer))
    assert.equal(code, 0, stderr())
    return JSON.parse(stdout()) as Confined
  })())

  it('the system call filter: AF_VSOCK and other socket families, new user namespaces (unshare -U) and the refused calls fail with EPERM; clone3 with ENOSYS; an x32 call kills the process', async () => {
    const seen = await confined()
    assert.equal(seen.seccomp, '2', 'a seccomp filter is on')
    assert.deepEqual(seen.sockets, {
      AF_VSOCK: 'EPERM', 'AF_NETLINK/KOBJECT_UEVENT': 'EPERM', AF_ALG: 'EPERM', AF_PACKET: 'EPERM',
      AF_UNIX: 'ok', AF_INET: 'ok', AF_INET6: 'ok', 'AF_NETLINK/ROUTE': 'ok',
    })
    assert.deepEqual(seen.vsock_python, ['PermissionError: [Errno 1] Operation not permitted'])
    assert.notEqual(seen.unshare_U.code, 0)
    assert.match(seen.unshare_U.stderr, /unshare failed: Operation not permitted/)
    const { clone3, ...refused } = seen.calls
    assert.equal(clone3, 'ENOSYS')
    for (const [name, outcome] of Object.entries(refused)) assert.equal(outcome, 'EPERM', name)
    assert.deepEqual(Object.keys(seen.every_refused), [...REFUSED])
    for (const [name, outcome] of Object.entries(seen.every_refused)) assert.equal(outcome, 'EPERM', name)
    assert.deepEqual(seen.x32, { code: -31, stdout: '' }, 'killed by SIGSYS')
  })

  it('the sandbox sees a minimal host: system folders, an /etc of an allow list, its working folder and what is bound; a world-readable file elsewhere is not there', async () => {
    const seen = await confined()
    const system = ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'].filter((name) => lexists(`/${name}`))
    assert.deepEqual(seen.root, [...system, 'dev', 'etc', 'home', 'proc', 'run', 'tmp', 'var'].sort())
    const etc = [...new Set([...ETC_FROM_HOST.filter((name) => lexists(`/etc/${name}`)).map((name) => name.split('/')[0]), ...GENERATED, 'mtab'])].sort()
    assert.deepEqual(seen.etc, etc)
    assert.deepEqual(seen.passwd, ['root:x:0:0:root:/root:/usr/sbin/nologin', 'nobody:x:65534:65534:keyvalet sandbox:/home/sandbox:/bin/sh'])
    for (const [path, visible] of Object.entries(seen.visible)) assert.equal(visible, false, path)
    assert.ok(existsSync(join(base, 'outside', 'note.txt')), 'on the host, the file is there')
    assert.deepEqual(seen.bound[join(base, 'scripts')], ['attack.py', 'confine.py'])
    assert.deepEqual(seen.bound_writes, { [join(base, 'shared', 'from-sandbox.txt')]: 'ok', [join(base, 'scripts', 'from-sandbox.txt')]: 'EROFS' }, '--bind is writable, --ro-bind is not')
    assert.equal(readFileSync(join(base, 'shared', 'from-sandbox.txt'), 'utf8'), 'written through --bind')
    assert.deepEqual(seen.home, { path: '/home/sandbox', mode: '0o700', mine: true })
    assert.deepEqual(seen.fds, [0, 1, 2, 3], 'no descriptor from outside (keyvalet run had a 10th)')
  })

  it('ordinary tools work inside: curl through keyvalet, git, node, id', async () => {
    const seen = await confined()
    assert.deepEqual(seen.tools.curl, { code: 0, stdout: '200', stderr: '' })
    assert.equal(upstream.received.find((r) => r.url === '/repos/acme/app/issues/4')?.headers.authorization, `Bearer ${SECRET}`)
    assert.ok((await audit()).some((r) => r.path === '/repos/acme/app/issues/4' && r.decision === 'allow'))
    assert.deepEqual(seen.tools.git, { code: 0, stdout: 'one', stderr: '' })
    assert.deepEqual(seen.tools.node, { code: 0, stdout: 'lo nobody', stderr: '' })
    assert.deepEqual(seen.tools.id, { code: 0, stdout: 'nobody', stderr: '' })
  })

  it('refuses to bind /, or keyvalet’s data folder or key file (or a folder inside them), before minting anything', async () => {
    const before = (await cli(['session', 'list', '--json', '--config', file], { env })).stdout
    for (const [flags, message] of [
      [['--bind', '/'], 'keyvalet run does not bind / into the sandbox'],
      [['--ro-bind', join(base, 'data')], `${join(base, 'data')} is inside keyvalet's data folder or is its key file`],
      [['--bind', keyFile], `${keyFile} is inside keyvalet's data folder or is its key file`],
      [['--workdir', join(base, 'data')], `${join(base, 'data')} is inside keyvalet's data folder or is its key file`],
    ] as const) {
      const refused = await cli(['run', '--config', file, ...RUN, '--workdir', work, ...flags, '--', 'true'], { env })
      assert.equal(refused.code, 1, refused.stderr)
      assert.equal(refused.stderr.split('\n')[0], `keyvalet run: ${message}`)
    }
    assert.equal((await cli(['session', 'list', '--json', '--config', file], { env })).stdout, before)
  })

  it('binds what keyvalet opened and checked: a bound folder swapped for a symlink before the mount changes nothing', async () => {
    const swap = join(base, 'swap')
    const other = join(base, 'swapped-in')
    const tools = join(base, 'tools')
    for (const [dir, marker] of [[swap, 'opened by keyvalet'], [other, 'swapped in']] as const) {
      mkdirSync(dir)
      writeFileSync(join(dir, 'marker'), marker, { mode: 0o644 })
    }
    // A bwrap that first swaps the folder for a symlink, between keyvalet's check and the mount
    // (on /usr/local/sbin, first on keyvalet's PATH, in a mount namespace of this test only).
    const bwrap = spawnSync('sh', ['-c', 'command -v bwrap'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, encoding: 'utf8' }).stdout.trim()
    mkdirSync(tools)
    writeFileSync(join(tools, 'bwrap'), `#!/bin/sh\n[ -L ${swap} ] || { mv ${swap} ${swap}.opened && ln -s ${other} ${swap}; }\nexec ${bwrap} "$@"\n`, { mode: 0o755 })
    const ran = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', `mount --bind ${tools} /usr/local/sbin && exec "$@"`, 'sh',
      process.execPath, MAIN, 'run', '--config', file, ...RUN, '--workdir', work, '--ro-bind', swap, '--', 'cat', join(swap, 'marker')], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, encoding: 'utf8', timeout: 30_000,
    })
    assert.equal(ran.status, 0, ran.stderr)
    assert.ok(lstatSync(swap).isSymbolicLink(), 'the folder was swapped before the mount')
    assert.equal(ran.stdout, 'opened by keyvalet')
  })

  it('refuses a --uid that is keyvalet’s: the owner of its data folder or key file, before minting anything', { skip: process.getuid?.() === 0 || process.env.CI === 'true' ? false : 'only root can give the key file to another uid' }, async () => {
    const before = (await cli(['session', 'list', '--json', '--config', file], { env })).stdout
    chownSync(keyFile, 4243, 4243)
    try {
      const refused = await cli(['run', '--config', file, ...RUN, '--workdir', work, '--uid', '4243', '--', 'true'], { env })
      assert.equal(refused.code, 1, refused.stderr)
      assert.match(refused.stderr, new RegExp(`^keyvalet run: the sandbox would run as uid 4243, the owner of ${keyFile}: a process of keyvalet's uid`))
    } finally {
      chownSync(keyFile, 0, 0)
    }
    assert.equal((await cli(['session', 'list', '--json', '--config', file], { env })).stdout, before)
  })

  it('the sandbox dies with keyvalet run, even when it is killed with SIGKILL', async () => {
    const marker = `${30 + Math.floor(Math.random() * 1000) / 1000}`
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file, ...RUN, '--workdir', work, '--', 'sh', '-c', `echo started; exec sleep ${marker}`], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    const closed = new Promise((resolve) => child.on('close', resolve))
    await waitFor(child, 'stdout', /started/)
    const sleeping = (): number => spawnSync('pgrep', ['-f', `^sleep ${marker}$`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length
    // "started" is printed by the shell before it execs sleep: on a loaded machine pgrep can come in between.
    for (let i = 0; i < 50 && sleeping() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(sleeping(), 1)
    child.kill('SIGKILL')
    await closed
    for (let i = 0; i < 50 && sleeping() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(sleeping(), 0, 'the command outlived keyvalet run')
  })

  it('keyvalet run gives back the young generation start-up grew before the command starts (as keyvalet start does), and leaves --expose-gc unset', async () => {
    const reportFile = join(work, `heap-${randomBytes(4).toString('hex')}.json`)
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file, ...RUN, '--workdir', work, '--', 'sh', '-c', 'echo started; exec sleep 30'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, HEAP_REPORT_FILE: reportFile, NODE_OPTIONS: `--import=${HEAP_REPORT}` }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    const closed = new Promise((resolve) => child.on('close', resolve))
    try {
      await waitFor(child, 'stdout', /started/)
      child.kill('SIGUSR2')
      for (let waited = 0; waited < 10_000 && !existsSync(reportFile); waited += 50) await new Promise((r) => setTimeout(r, 50))
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as { committed: Record<string, number>; gcInNewContext: string }
      const newSpace = report.committed.new_space
      assert.ok(newSpace !== undefined && newSpace <= 4 * 1024 * 1024, `new space committed: ${((newSpace ?? Number.NaN) / 1024 / 1024).toFixed(1)} MiB`)
      assert.equal(report.gcInNewContext, 'undefined', '--expose-gc is still set')
    } finally {
      child.kill('SIGTERM')
      await closed
      rmSync(reportFile, { force: true })
    }
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
