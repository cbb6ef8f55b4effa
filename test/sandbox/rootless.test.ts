import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { MAIN, type CliResult } from '../helpers/cli.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { collect, HOST, RUN, writeConfig } from './fixture.ts'

// keyvalet run by an ordinary user (uid 4242, whom this test names in a private mount namespace:
// /etc/passwd, /etc/group, /etc/subuid and /etc/subgid are bound over there, the host's are not
// touched). The checkout is bound at a folder every user can reach, so that the test does not
// depend on the folders above it; its files must be readable by others (.ci/run makes sure).
const USER = 4242
const SUBORDINATE = 300000
const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')

interface AsUser { readonly dir: string; run(argv: string[], opts?: { cwd?: string; env?: Record<string, string>; input?: string }): Promise<CliResult> }

/** A private mount namespace where uid 4242 exists (with subordinate ids, or none) and can read the checkout. */
function asUser(subordinate: boolean): AsUser {
  const dir = mkdtempSync('/var/tmp/keyvalet-run-as-')
  chmodSync(dir, 0o755)
  const add = (file: string, line: string) => writeFileSync(join(dir, file.slice('/etc/'.length)), `${readFileSync(file, 'utf8').trimEnd()}\n${line}\n`, { mode: 0o644 })
  add('/etc/passwd', `kvuser:x:${USER}:${USER}:keyvalet test:/nonexistent:/usr/sbin/nologin`)
  add('/etc/group', `kvuser:x:${USER}:`)
  for (const file of ['subuid', 'subgid']) writeFileSync(join(dir, file), subordinate ? `kvuser:${SUBORDINATE}:65536\n` : '', { mode: 0o644 })
  mkdirSync(join(dir, 'checkout'))
  const within = (path: string) => (path.startsWith(`${CHECKOUT}/`) ? join(dir, 'checkout', relative(CHECKOUT, path)) : path)
  const script = ['passwd', 'group', 'subuid', 'subgid'].map((f) => `mount --bind ${dir}/${f} /etc/${f}`).join(' && ') +
    ` && mount --bind ${CHECKOUT} ${dir}/checkout && exec setpriv --reuid ${USER} --regid ${USER} --clear-groups -- "$@"`
  return {
    dir,
    run: (argv, opts = {}) => new Promise((resolve, reject) => {
      const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...argv.map(within)], {
        cwd: opts.cwd, env: { PATH: process.env.PATH, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'],
      })
      const stdout = collect(child, 'stdout')
      const stderr = collect(child, 'stderr')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.on('error', reject).on('close', (code) => {
        clearTimeout(timer)
        resolve({ code, stdout: stdout(), stderr: stderr() })
      })
      child.stdin?.end(opts.input ?? '')
    }),
  }
}

/** Why this file cannot run here, if it cannot. In CI (CI=true) that is a failure, never a skip. */
function precondition(): string | false {
  if (process.getuid?.() !== 0) return 'it needs root to become uid 4242 (the other sandbox tests then run unprivileged themselves)'
  const missing = ['/etc/subuid', '/etc/subgid'].filter((f) => !existsSync(f))
  if (missing.length > 0) return `${missing.join(' and ')} must exist to be bound over`
  const user = asUser(false)
  try {
    const probe = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c',
      `mount --bind ${CHECKOUT} ${user.dir}/checkout && exec setpriv --reuid ${USER} --regid ${USER} --clear-groups -- "$@"`, 'sh',
      process.execPath.startsWith(`${CHECKOUT}/`) ? join(user.dir, 'checkout', relative(CHECKOUT, process.execPath)) : process.execPath,
      '-e', `require('node:fs').accessSync(${JSON.stringify(join(user.dir, 'checkout', relative(CHECKOUT, MAIN)))})`], { encoding: 'utf8' })
    return probe.status === 0 ? false : `the files of this checkout (${CHECKOUT}) are not readable by other users: ${probe.stderr.trim().split('\n')[0]}`
  } finally {
    rmSync(user.dir, { recursive: true, force: true })
  }
}

const missing = precondition()
const inCi = process.env.CI === 'true'

describe('keyvalet run without root: the same sandbox in a user namespace, as a subordinate uid', { timeout: 60_000, skip: inCi ? false : missing }, () => {
  before(() => {
    if (missing !== false) assert.fail(`CI=true, and this must run: ${missing}`)
  })

  let upstream: Upstream
  let dns: DnsServer
  let base: string
  let user: AsUser
  const pki = upstreamCertificate(HOST)
  before(async () => {
    upstream = await startUpstream({ tls: pki.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    user = asUser(true)
    base = mkdtempSync('/var/tmp/keyvalet-run-user-')
    writeFileSync(join(base, 'upstream-ca.pem'), pki.caPem)
    writeConfig(base, upstream.port, dns.address)
    writeFileSync(join(base, 'master.key'), randomBytes(32).toString('base64'), { mode: 0o600 })
    mkdirSync(join(base, 'out'), { mode: 0o777 })
    chmodSync(join(base, 'out'), 0o777)
    chmodSync(base, 0o755)
    spawnSync('chown', ['-R', `${USER}:${USER}`, base])
  })
  after(async () => {
    await upstream?.close()
    await dns?.close()
    for (const dir of [base, user?.dir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })
  const kv = (args: string[], input?: string): Promise<CliResult> =>
    user.run([process.execPath, MAIN, ...args], { cwd: base, env: { HOME: base, KEYVALET_MASTER_KEY_FILE: join(base, 'master.key') }, input })

  it('the command runs as uid 65534 inside and a subordinate uid outside, never keyvalet’s; without capabilities, filtered, with only a loopback; its request works', async () => {
    const secret = `ghp_userns_${randomBytes(8).toString('hex')}`
    const set = await kv(['secret', 'set', 'github-token', '--config', join(base, 'keyvalet.yaml')], secret)
    assert.equal(set.code, 0, set.stderr)
    const keyFile = join(base, 'master.key')
    const script = `
import json, os, socket, subprocess, urllib.request
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
with urllib.request.urlopen("https://${HOST}:${upstream.port}/repos/acme/app/issues/9", timeout=10) as r:
    body = r.read().decode()
open(${JSON.stringify(join(base, 'out', 'written'))}, "w").write("from the sandbox")
def vsock():
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        return "open"
    except OSError as e:
        return e.errno
print(json.dumps({"uid": status["Uid"], "caps": [status[k] for k in ("CapPrm", "CapEff", "CapBnd")], "nnp": status["NoNewPrivs"], "seccomp": status["Seccomp"],
  "uid_map": open("/proc/self/uid_map").read().split(), "max_user_namespaces": open("/proc/sys/user/max_user_namespaces").read().strip(),
  "vsock": vsock(), "unshare": subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode,
  "interfaces": [n for _, n in socket.if_nameindex()], "pids": [p for p in os.listdir("/proc") if p.isdigit()],
  "key_file": oct(os.stat(${JSON.stringify(keyFile)}).st_mode), "data": os.listdir(${JSON.stringify(join(base, 'data'))}) if os.access(${JSON.stringify(join(base, 'data'))}, os.R_OK) else "unreadable",
  "body": body}))
`
    const ran = await kv(['run', '--config', join(base, 'keyvalet.yaml'), ...RUN, '--workdir', base, '--', 'python3', '-c', script])
    assert.equal(ran.code, 0, ran.stderr)
    assert.match(ran.stderr, new RegExp(`sandbox as uid 65534 \\(uid ${SUBORDINATE} on the host\\), in a user namespace`))
    assert.match(ran.stderr, new RegExp(`warning: uid ${SUBORDINATE} cannot write ${base}`))
    const seen = JSON.parse(ran.stdout) as Record<string, unknown>
    assert.equal(seen.uid, '65534\t65534\t65534\t65534')
    assert.deepEqual(seen.uid_map, ['0', String(USER), '1', '65534', String(SUBORDINATE), '1'], 'root of the namespace (bubblewrap’s set-up) is keyvalet’s user, the command a subordinate uid')
    assert.equal(statSync(join(base, 'out', 'written')).uid, SUBORDINATE, 'on the host, what the command wrote belongs to the subordinate uid')
    assert.deepEqual(seen.caps, ['0000000000000000', '0000000000000000', '0000000000000000'])
    assert.equal(seen.nnp, '1')
    assert.equal(seen.seccomp, '2')
    assert.equal(seen.max_user_namespaces, '0')
    assert.equal(seen.vsock, 1, 'AF_VSOCK: EPERM')
    assert.notEqual(seen.unshare, 0)
    assert.deepEqual(seen.interfaces, ['lo'])
    assert.ok((seen.pids as string[]).length <= 4, String(seen.pids))
    assert.equal((seen.key_file as string).slice(0, 4), '0o20', 'the key file is /dev/null inside')
    assert.ok(seen.data === 'unreadable' || (seen.data as string[]).length === 0, String(seen.data))
    assert.match(seen.body as string, /"authorization":"Bearer \*+"/)
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${secret}`)
  })

  it('refuses, before minting anything, where keyvalet’s user has no subordinate ids', async () => {
    const none = asUser(false)
    try {
      const before = (await kv(['session', 'list', '--json', '--config', join(base, 'keyvalet.yaml')])).stdout
      const refused = await none.run([process.execPath, MAIN, 'run', '--config', join(base, 'keyvalet.yaml'), ...RUN, '--workdir', base, '--', 'true'], {
        cwd: base, env: { HOME: base, KEYVALET_MASTER_KEY_FILE: join(base, 'master.key') },
      })
      assert.equal(refused.code, 1, refused.stderr)
      assert.match(refused.stderr, /^keyvalet run: keyvalet run without root runs the sandbox as a subordinate uid of kvuser, and \/etc\/subuid gives kvuser none\nhint: give kvuser subordinate ids \(sudo usermod --add-subuids/)
      assert.equal((await kv(['session', 'list', '--json', '--config', join(base, 'keyvalet.yaml')])).stdout, before)
    } finally {
      rmSync(none.dir, { recursive: true, force: true })
    }
  })

  it('fails before minting anything, with one clear line, where the kernel refuses the namespaces', async () => {
    const refusedBase = mkdtempSync('/var/tmp/keyvalet-run-refused-')
    try {
      chmodSync(refusedBase, 0o755)
      writeFileSync(join(refusedBase, 'keyvalet.yaml'), 'version: 1\nconnectors: {}\n', { mode: 0o644 })
      // A user namespace whose limit (per namespace) leaves keyvalet's user none to create.
      const refused = await user.run(['unshare', '--user', '--map-root-user', 'sh', '-c', `echo 1 > /proc/sys/user/max_user_namespaces && exec unshare --user --map-user=${USER} --map-group=${USER} "$@"`, 'sh',
        process.execPath, MAIN, 'run', '--config', join(refusedBase, 'keyvalet.yaml'), ...RUN, '--', 'true'], { env: {} })
      assert.equal(refused.code, 1, refused.stderr)
      assert.match(refused.stderr, /^keyvalet run: keyvalet cannot make the sandbox here \(unshare: .*\)\nhint: run as root, or allow unprivileged user namespaces/)
      assert.ok(!existsSync(join(refusedBase, 'data')), 'nothing was opened or minted')
    } finally {
      rmSync(refusedBase, { recursive: true, force: true })
    }
  })
})
