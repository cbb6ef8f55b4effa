import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startGitServer, type GitServer } from '../helpers/git-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'

const execFileP = promisify(execFile)
const TOKEN = 'ghs_realGitToken_0123456789abcdefXYZ'
const HOST = 'git.example.test'

/** git with a bounded run time; never a sync call (keyvalet runs in this process). */
async function git(args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<{ stdout: string; stderr: string }> {
  const { stdout, stderr } = await execFileP('git', args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' })
  return { stdout, stderr }
}

/** Like git(), but a non-zero exit is returned instead of thrown. */
async function gitMayFail(args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    return { code: 0, ...(await git(args, opts)) }
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean }
    if (e.killed === true || typeof e.code !== 'number') throw err
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

describe('git over HTTPS through the forward proxy, against git http-backend', () => {
  let root: string
  let projectRoot: string
  let bare: string
  let home: string
  let execPath: string
  let gitServer: GitServer
  let dns: DnsServer
  let kv: TestKeyvalet
  let caFile: string
  let proxyPort: number
  let writeKey: string
  let readKey: string
  let baseEnv: NodeJS.ProcessEnv
  let pushDenial: Awaited<ReturnType<TestKeyvalet['audit']>>[number] | undefined

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'keyvalet-git-'))
    home = join(root, 'home')
    mkdirSync(home)
    // A HOME with no credentials at all: only a name and an email for commits.
    writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Agent Smith\n\temail = agent@example.test\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n')
    baseEnv = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' }
    execPath = (await git(['--exec-path'], { env: baseEnv })).stdout.trim()

    // The bare repository the server exports: acme/app.git with one commit.
    projectRoot = join(root, 'srv')
    const seed = join(root, 'seed')
    mkdirSync(seed)
    await git(['init', '-q', '-b', 'main'], { cwd: seed, env: baseEnv })
    writeFileSync(join(seed, 'README.md'), '# app\nhello from the seed commit\n')
    await git(['add', 'README.md'], { cwd: seed, env: baseEnv })
    await git(['commit', '-q', '-m', 'initial commit'], { cwd: seed, env: baseEnv })
    mkdirSync(join(projectRoot, 'acme'), { recursive: true })
    bare = join(projectRoot, 'acme', 'app.git')
    await git(['clone', '-q', '--bare', seed, bare], { env: baseEnv })

    const pki = upstreamCertificate(HOST)
    gitServer = await startGitServer({ tls: pki.tls, projectRoot, username: 'x-access-token', password: TOKEN, execPath })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  git:
    upstream: https://${HOST}:${gitServer.port}
    ca_file: git-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: git-token, inject: basic, username: x-access-token }
    rules:
      - { id: refs-upload, methods: [GET], path: /acme/app.git/info/refs, severity: read,
          query: { service: { pattern: git-upload-pack, required: true } }, allow_other_query: false }
      - { id: refs-receive, methods: [GET], path: /acme/app.git/info/refs, severity: write,
          query: { service: { pattern: git-receive-pack, required: true } }, allow_other_query: false }
      - { id: upload-pack, methods: [POST], path: /acme/app.git/git-upload-pack, severity: read }
      - { id: receive-pack, methods: [POST], path: /acme/app.git/git-receive-pack, severity: write }
`, { files: { 'git-ca.pem': pki.caPem } })
    await kv.setSecret('git-token', TOKEN)
    writeKey = (await kv.mintKey(['git:write'])).key
    readKey = (await kv.mintKey(['git:read'], { agent: 'read-only-agent' })).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    caFile = join(root, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    proxyPort = Number(new URL(kv.forwardUrl).port)
  })
  after(async () => {
    await kv?.close()
    await gitServer?.close()
    await dns?.close()
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
  })

  /** The sandbox's environment: the proxy with a task key, keyvalet's CA, nothing else. */
  const sandboxEnv = (key: string): NodeJS.ProcessEnv => ({
    ...baseEnv,
    HTTPS_PROXY: `http://task:${key}@127.0.0.1:${proxyPort}`,
    GIT_SSL_CAINFO: caFile,
    NO_PROXY: '',
  })
  const repoUrl = () => `https://${HOST}:${gitServer.port}/acme/app.git`
  const bareHead = async () => (await git(['--git-dir', bare, 'rev-parse', 'refs/heads/main'], { env: baseEnv })).stdout.trim()

  /**
   * Audit records after `from` that went through the pipeline. git (libcurl, http.proxyAuthMethod
   * anyauth) first sends each CONNECT without Proxy-Authorization and retries with it after the
   * 407: those probes are audited as task_key_missing and left out here.
   */
  async function recordsSince(from: number) {
    const records = (await kv.audit()).slice(from)
    const probes = records.filter((r) => r.error === 'task_key_missing')
    assert.ok(probes.every((r) => r.method === 'CONNECT' && r.status === 407 && r.decision === 'deny'))
    return records.filter((r) => r.error !== 'task_key_missing')
  }

  function assertNoKeyUpstream(key: string): void {
    const seen = JSON.stringify(gitServer.received.map((r) => r.headers))
    assert.ok(!seen.includes(key), 'the task key never reaches the git server')
    assert.ok(!seen.includes(Buffer.from(`task:${key}`).toString('base64')), 'nor does its Basic form')
  }

  it('clones with the injected token and pushes with a write grant', async () => {
    const auditFrom = (await kv.audit()).length
    const seenFrom = gitServer.received.length
    const work = join(root, 'clone-write')
    await git(['clone', '-q', repoUrl(), work], { env: sandboxEnv(writeKey) })
    assert.equal(readFileSync(join(work, 'README.md'), 'utf8'), '# app\nhello from the seed commit\n')

    // Upstream received: only authenticated requests, all with the real token, never the key.
    const cloneSeen = gitServer.received.slice(seenFrom)
    assert.ok(cloneSeen.length >= 2, `the clone reached the git server (${cloneSeen.length} requests)`)
    for (const r of cloneSeen) {
      assert.equal(r.headers.authorization, `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`)
      assert.equal(r.status, 200, `${r.method} ${r.url}`)
      assert.equal(r.headers.host, `${HOST}:${gitServer.port}`)
    }
    assert.deepEqual(cloneSeen.map((r) => `${r.method} ${r.url}`).slice(0, 2), ['GET /acme/app.git/info/refs?service=git-upload-pack', 'POST /acme/app.git/git-upload-pack'])

    // Audit: one allowed forward-mode record per request, with the rule and credential.
    const cloneRecords = await recordsSince(auditFrom)
    assert.equal(cloneRecords.length, cloneSeen.length)
    assert.deepEqual(cloneRecords.map((r) => [r.mode, r.decision, r.credential, r.status]), cloneSeen.map(() => ['forward', 'allow', 'git-token', 200]))
    assert.equal(cloneRecords[0]?.rule, 'refs-upload')
    assert.equal(cloneRecords[0]?.path, '/acme/app.git/info/refs')
    assert.deepEqual(cloneRecords[0]?.query_keys, ['service'])
    assert.equal(cloneRecords[1]?.rule, 'upload-pack')
    assert.equal(cloneRecords[1]?.path, '/acme/app.git/git-upload-pack')

    // Commit and push.
    writeFileSync(join(work, 'CHANGES.md'), 'pushed through keyvalet\n')
    await git(['add', 'CHANGES.md'], { cwd: work, env: baseEnv })
    await git(['commit', '-q', '-m', 'change from the agent'], { cwd: work, env: baseEnv })
    const local = (await git(['rev-parse', 'HEAD'], { cwd: work, env: baseEnv })).stdout.trim()
    const pushAuditFrom = (await kv.audit()).length
    const pushSeenFrom = gitServer.received.length
    await git(['push', '-q', 'origin', 'main'], { cwd: work, env: sandboxEnv(writeKey) })
    assert.equal(await bareHead(), local, 'the bare repository has the pushed commit')
    const shown = (await git(['--git-dir', bare, 'show', 'main:CHANGES.md'], { env: baseEnv })).stdout
    assert.equal(shown, 'pushed through keyvalet\n')

    const pushSeen = gitServer.received.slice(pushSeenFrom)
    assert.deepEqual(pushSeen.map((r) => `${r.method} ${r.url} ${r.status}`), [
      'GET /acme/app.git/info/refs?service=git-receive-pack 200',
      'POST /acme/app.git/git-receive-pack 200',
    ])
    const pushRecords = await recordsSince(pushAuditFrom)
    assert.deepEqual(pushRecords.map((r) => [r.mode, r.decision, r.rule, r.credential, r.path, r.status]), [
      ['forward', 'allow', 'refs-receive', 'git-token', '/acme/app.git/info/refs', 200],
      ['forward', 'allow', 'receive-pack', 'git-token', '/acme/app.git/git-receive-pack', 200],
    ])
    assert.ok(pushRecords.every((r) => r.agent === 'test-agent' && r.user === 'alice'))
    assertNoKeyUpstream(writeKey)
    const log = JSON.stringify(await kv.audit())
    assert.ok(!log.includes(TOKEN) && !log.includes(writeKey), 'no token or task key in the audit log')
  })

  it('refuses a push with a read-only grant: git fails, the repository is unchanged, the denial is audited', async () => {
    const work = join(root, 'clone-read')
    await git(['clone', '-q', repoUrl(), work], { env: sandboxEnv(readKey) })
    assert.ok(existsSync(join(work, 'README.md')), 'a read grant is enough to clone')
    writeFileSync(join(work, 'EVIL.md'), 'should never land\n')
    await git(['add', 'EVIL.md'], { cwd: work, env: baseEnv })
    await git(['commit', '-q', '-m', 'unauthorised change'], { cwd: work, env: baseEnv })

    const headBefore = await bareHead()
    const auditFrom = (await kv.audit()).length
    const seenFrom = gitServer.received.length
    const push = await gitMayFail(['push', 'origin', 'main'], { cwd: work, env: sandboxEnv(readKey) })
    assert.notEqual(push.code, 0, 'git push exits non-zero')
    assert.match(push.stderr, /403/, `git shows the refusal: ${push.stderr}`)
    assert.equal(await bareHead(), headBefore, 'the bare repository is unchanged')
    assert.equal(gitServer.received.length, seenFrom, 'nothing of the push reached the git server')

    const records = await recordsSince(auditFrom)
    assert.equal(records.length, 1, 'one refused request: the ref advertisement for git-receive-pack')
    const denial = records[0]
    assert.deepEqual([denial?.mode, denial?.decision, denial?.error, denial?.status, denial?.method, denial?.path, denial?.query_keys, denial?.credential, denial?.agent],
      ['forward', 'deny', 'policy_denied', 403, 'GET', '/acme/app.git/info/refs', ['service'], null, 'read-only-agent'])
    assertNoKeyUpstream(readKey)
    pushDenial = denial
  })

  // Known problem (reported, not fixed here): for GET info/refs?service=git-receive-pack with a
  // read grant, decide() reports the query failure of the *other* rule (refs-upload:
  // query_not_allowed) instead of the severity failure of the rule that matches the request
  // (refs-receive: severity_exceeds_grant), because query failures outrank severity failures and
  // the grant is checked before the query. The denial is right; the reason shown is misleading.
  it('the push denial names severity_exceeds_grant and the receive-pack rule', () => {
    assert.deepEqual([pushDenial?.reason, pushDenial?.rule], ['severity_exceeds_grant', 'refs-receive'])
  })

  it('refuses git-receive-pack itself with a read-only grant, even when the client skips the ref advertisement', async () => {
    // A client that goes straight to POST git-receive-pack (what a hand-rolled pusher could do).
    const headBefore = await bareHead()
    const auditFrom = (await kv.audit()).length
    const seenFrom = gitServer.received.length
    const { stdout } = await execFileP('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '10',
      '-x', `http://task:${readKey}@127.0.0.1:${proxyPort}`, '--cacert', caFile,
      '-H', 'Content-Type: application/x-git-receive-pack-request', '--data-binary', '0000',
      `${repoUrl()}/git-receive-pack`], { encoding: 'utf8', timeout: 15_000 })
    assert.match(stdout, /severity_exceeds_grant/)
    assert.match(stdout, /\n403$/)
    assert.equal(gitServer.received.length, seenFrom)
    assert.equal(await bareHead(), headBefore)
    const denial = (await recordsSince(auditFrom)).at(-1)
    assert.deepEqual([denial?.mode, denial?.decision, denial?.reason, denial?.rule, denial?.path, denial?.status],
      ['forward', 'deny', 'severity_exceeds_grant', 'receive-pack', '/acme/app.git/git-receive-pack', 403])
  })

  it('clones and pushes through the gateway, the task key as the Basic password git sends after a challenge', async () => {
    const gatewayRepo = `${kv.url}/git/acme/app.git`
    // The challenge git needs before it sends any password: 401 with WWW-Authenticate: Basic.
    const { stdout: challenge } = await execFileP('curl', ['-s', '-i', '--max-time', '10', `${gatewayRepo}/info/refs?service=git-upload-pack`], { encoding: 'utf8', timeout: 15_000 })
    assert.match(challenge, /^HTTP\/1\.1 401 /)
    assert.match(challenge, /\r\nwww-authenticate: Basic realm="keyvalet"/i)
    assert.match(challenge, /task_key_missing/)

    // The sandbox's git: a credential helper that answers with the task key, no proxy.
    const helper = ['-c', 'credential.helper=', '-c', `credential.helper=!f() { echo username=task; echo password=${writeKey}; }; f`]
    const auditFrom = (await kv.audit()).length
    const seenFrom = gitServer.received.length
    const work = join(root, 'clone-gateway')
    await git([...helper, 'clone', '-q', gatewayRepo, work], { env: baseEnv })
    assert.equal(readFileSync(join(work, 'README.md'), 'utf8'), '# app\nhello from the seed commit\n')
    writeFileSync(join(work, 'GATEWAY.md'), 'pushed through the gateway\n')
    await git(['add', 'GATEWAY.md'], { cwd: work, env: baseEnv })
    await git(['commit', '-q', '-m', 'change through the gateway'], { cwd: work, env: baseEnv })
    const local = (await git(['rev-parse', 'HEAD'], { cwd: work, env: baseEnv })).stdout.trim()
    await git([...helper, 'push', '-q', 'origin', 'main'], { cwd: work, env: baseEnv })
    assert.equal(await bareHead(), local, 'the bare repository has the pushed commit')

    // Upstream: only the real token; a clone (ref advertisement, then one or more upload-packs) and a push.
    const seen = gitServer.received.slice(seenFrom)
    const requests = seen.map((r) => `${r.method} ${r.url} ${r.status}`).join('\n')
    assert.match(requests, /^GET \/acme\/app\.git\/info\/refs\?service=git-upload-pack 200\n(POST \/acme\/app\.git\/git-upload-pack 200\n)+GET \/acme\/app\.git\/info\/refs\?service=git-receive-pack 200\nPOST \/acme\/app\.git\/git-receive-pack 200$/)
    for (const r of seen) assert.equal(r.headers.authorization, `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`)
    assertNoKeyUpstream(writeKey)

    // Audit: git's unauthenticated first tries (refused, with the challenge), then one allowed record per upstream request.
    const records = (await kv.audit()).slice(auditFrom)
    const probes = records.filter((r) => r.error === 'task_key_missing')
    assert.ok(probes.length >= 1 && probes.every((r) => r.mode === 'gateway' && r.status === 401 && r.decision === 'deny'))
    const ruleOf = (url: string): string => (url.includes('info/refs') ? (url.includes('receive') ? 'refs-receive' : 'refs-upload') : url.includes('receive') ? 'receive-pack' : 'upload-pack')
    assert.deepEqual(records.filter((r) => r.decision === 'allow').map((r) => [r.mode, r.rule, r.credential, r.agent, r.status]),
      seen.map((r) => ['gateway', ruleOf(r.url), 'git-token', 'test-agent', 200]))
    assert.equal(records.length, probes.length + seen.length)
  })

  it('the git server itself refuses a request without the real token (the credential is really needed)', async () => {
    const { stdout } = await execFileP('curl', ['-s', '-i', '--max-time', '10', '--resolve', `${HOST}:${gitServer.port}:127.0.0.1`,
      '--cacert', join(kv.dir, 'git-ca.pem'), '-u', `x-access-token:${writeKey}`, `${repoUrl()}/info/refs?service=git-upload-pack`], { encoding: 'utf8', timeout: 15_000 })
    assert.match(stdout, /^HTTP\/1\.1 401 /)
    assert.match(stdout, /www-authenticate: Basic/i)
    gitServer.received.pop() // this direct request (with the key on purpose) is not part of the proxied traffic
  })
})
