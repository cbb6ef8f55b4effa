import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startGitHubServer, type GitHubServer } from '../helpers/github-server.ts'
import { startGitServer, type GitServer } from '../helpers/git-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const execFileP = promisify(execFile)
const HOST = 'git.example.test'
const LABEL_READ = 'github_app:4242:77 repositories=app permissions=contents:read'
const LABEL_WRITE = 'github_app:4242:77 repositories=app permissions=contents:write'

/** git with a bounded run time; a non-zero exit is returned, not thrown (keyvalet runs in this process: never a sync call). */
async function git(args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP('git', args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean }
    if (e.killed === true || typeof e.code !== 'number') throw err
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/**
 * git over HTTPS with installation tokens: the git server accepts only tokens the GitHub stand-in
 * minted (Basic x-access-token:<token>), within their repositories and contents permission.
 * The receive-pack rules are marked read on purpose, so that a read grant reaches the server and
 * the token's own scope is what refuses the push.
 */
describe('github_app over git: clone and push with installation tokens', () => {
  const app = generateKeyPairSync('rsa', { modulusLength: 2048 })
  let root: string
  let bare: string
  let baseEnv: NodeJS.ProcessEnv
  let gh: GitHubServer
  let gitServer: GitServer
  let dns: DnsServer
  let kv: TestKeyvalet
  let caFile: string
  let proxyPort: number
  let readKey: string
  let writeKey: string

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'keyvalet-ghapp-git-'))
    const home = join(root, 'home')
    mkdirSync(home)
    writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Agent Smith\n\temail = agent@example.test\n[init]\n\tdefaultBranch = main\n')
    baseEnv = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' }
    const execPath = (await git(['--exec-path'], { env: baseEnv })).stdout.trim()
    const seed = join(root, 'seed')
    mkdirSync(seed)
    await git(['init', '-q', '-b', 'main'], { cwd: seed, env: baseEnv })
    writeFileSync(join(seed, 'README.md'), '# app\n')
    await git(['add', 'README.md'], { cwd: seed, env: baseEnv })
    await git(['commit', '-q', '-m', 'initial commit'], { cwd: seed, env: baseEnv })
    const projectRoot = join(root, 'srv')
    mkdirSync(join(projectRoot, 'acme'), { recursive: true })
    bare = join(projectRoot, 'acme', 'app.git')
    await git(['clone', '-q', '--bare', seed, bare], { env: baseEnv })

    const apiPki = upstreamCertificate('127.0.0.1')
    const gitPki = upstreamCertificate(HOST)
    gh = await startGitHubServer({
      tls: apiPki.tls,
      app: { id: 4242, publicKey: app.publicKey, permissions: { metadata: 'read', contents: 'write' } },
      installations: [{ id: 77, account: 'acme', repositories: ['app'] }],
      clock: () => kv?.now ?? Date.now(),
    })
    // GitHub's git endpoint: the token's repository, and contents: write for a push, read otherwise.
    const authorize = (req: IncomingMessage) => {
      const url = new URL(req.url ?? '/', 'https://git.invalid')
      const repo = /^\/([^/]+)\/([^/]+)\.git\//.exec(url.pathname)
      const push = url.pathname.endsWith('/git-receive-pack') || url.searchParams.get('service') === 'git-receive-pack'
      return gh.check(gh.tokenOf(req.headers.authorization), `${repo?.[1]}/${repo?.[2]}`, 'contents', push ? 'write' : 'read')
    }
    gitServer = await startGitServer({ tls: gitPki.tls, projectRoot, username: 'x-access-token', password: 'unused', execPath, authorize })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  git:
    upstream: https://${HOST}:${gitServer.port}
    ca_file: cas.pem
    allow_addresses: [127.0.0.1/32]
    credential:
      source: github_app
      secret: github-app-key
      inject: basic
      username: x-access-token
      github_app:
        app_id: 4242
        installation_id: 77
        api_url: ${gh.url}
        repositories: [acme/app]
        permissions: { read: { contents: read }, write: { contents: write } }
    rules:
      - { id: refs, methods: [GET], path: /acme/app.git/info/refs, severity: read }
      - { id: upload-pack, methods: [POST], path: /acme/app.git/git-upload-pack, severity: read }
      - { id: receive-pack, methods: [POST], path: /acme/app.git/git-receive-pack, severity: read }  # misconfigured on purpose
`, { files: { 'cas.pem': apiPki.caPem + gitPki.caPem } })
    await kv.setSecret('github-app-key', app.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString())
    readKey = (await kv.mintKey(['git:read'])).key
    writeKey = (await kv.mintKey(['git:write'], { agent: 'writer' })).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    caFile = join(root, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    proxyPort = Number(new URL(kv.forwardUrl).port)
  })
  after(async () => {
    await kv?.close()
    await gitServer?.close()
    await gh?.close()
    await dns?.close()
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
  })

  const sandboxEnv = (key: string): NodeJS.ProcessEnv => ({ ...baseEnv, HTTPS_PROXY: `http://task:${key}@127.0.0.1:${proxyPort}`, GIT_SSL_CAINFO: caFile, NO_PROXY: '' })
  const repoUrl = () => `https://${HOST}:${gitServer.port}/acme/app.git`
  const basic = (token: string | undefined) => `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`
  const bareHead = async () => (await git(['--git-dir', bare, 'rev-parse', 'refs/heads/main'], { env: baseEnv })).stdout.trim()
  /** Records after `from`, without git's first CONNECT probes that carry no Proxy-Authorization. */
  const recordsSince = async (from: number) => (await kv.audit()).slice(from).filter((r) => r.error !== 'task_key_missing')

  it('a read grant clones with a read-only installation token', async () => {
    const auditFrom = (await kv.audit()).length
    const work = join(root, 'clone-read')
    const clone = await git(['clone', '-q', repoUrl(), work], { env: sandboxEnv(readKey) })
    assert.equal(clone.code, 0, clone.stderr)
    assert.equal(readFileSync(join(work, 'README.md'), 'utf8'), '# app\n')
    assert.equal(gh.mints.length, 1)
    const token = gh.mints[0]?.token
    assert.deepEqual([token?.repositories, token?.permissions], [['acme/app'], { contents: 'read', metadata: 'read' }])
    assert.ok(gitServer.received.length >= 2)
    for (const r of gitServer.received) assert.deepEqual([r.headers.authorization, r.status], [basic(token?.token), 200])
    const records = await recordsSince(auditFrom)
    assert.deepEqual(records.map((r) => [r.mode, r.decision, r.credential]), gitServer.received.map(() => ['forward', 'allow', LABEL_READ]))
    const log = JSON.stringify(await kv.audit())
    assert.ok(!log.includes(token?.token ?? '-') && !log.includes(readKey))
  })

  it('a read grant cannot push: the token has no contents: write, so GitHub refuses it although keyvalet allowed it', async () => {
    const work = join(root, 'clone-read')
    writeFileSync(join(work, 'EVIL.md'), 'should never land\n')
    await git(['add', 'EVIL.md'], { cwd: work, env: baseEnv })
    await git(['commit', '-q', '-m', 'unauthorised change'], { cwd: work, env: baseEnv })
    const headBefore = await bareHead()
    const seenFrom = gitServer.received.length
    const auditFrom = (await kv.audit()).length
    const push = await git(['push', 'origin', 'main'], { cwd: work, env: sandboxEnv(readKey) })
    assert.notEqual(push.code, 0)
    assert.match(push.stderr, /403/, push.stderr)
    assert.equal(await bareHead(), headBefore, 'the repository is unchanged')
    const seen = gitServer.received.slice(seenFrom)
    assert.deepEqual(seen.map((r) => [r.url, r.status, r.headers.authorization]), [['/acme/app.git/info/refs?service=git-receive-pack', 403, basic(gh.mints[0]?.token?.token)]])
    const records = await recordsSince(auditFrom)
    assert.deepEqual(records.map((r) => [r.decision, r.rule, r.credential, r.upstream_status]), [['allow', 'refs', LABEL_READ, 403]])
  })

  it('a write grant pushes with a contents: write token', async () => {
    const work = join(root, 'clone-write')
    assert.equal((await git(['clone', '-q', repoUrl(), work], { env: sandboxEnv(writeKey) })).code, 0)
    writeFileSync(join(work, 'CHANGES.md'), 'pushed with an installation token\n')
    await git(['add', 'CHANGES.md'], { cwd: work, env: baseEnv })
    await git(['commit', '-q', '-m', 'change from the agent'], { cwd: work, env: baseEnv })
    const local = (await git(['rev-parse', 'HEAD'], { cwd: work, env: baseEnv })).stdout.trim()
    const seenFrom = gitServer.received.length
    const push = await git(['push', '-q', 'origin', 'main'], { cwd: work, env: sandboxEnv(writeKey) })
    assert.equal(push.code, 0, push.stderr)
    assert.equal(await bareHead(), local)
    const token = gh.mints.at(-1)?.token
    assert.deepEqual(token?.permissions, { contents: 'write', metadata: 'read' })
    assert.equal(gh.mints.length, 2, 'one token per scope, each minted once')
    assert.deepEqual(gitServer.received.slice(seenFrom).map((r) => [r.status, r.headers.authorization]), [[200, basic(token?.token)], [200, basic(token?.token)]])
    assert.equal((await kv.audit()).at(-1)?.credential, LABEL_WRITE)
  })
})
