/**
 * keyvalet installed the npm way: bin/keyvalet reached through symlinks (node_modules/.bin,
 * <prefix>/bin, a link of one's own) and the package's files under a node_modules folder, where
 * Node refuses to strip TypeScript types by itself.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'bin', 'keyvalet')
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> }
const VERSION = PACKAGE.version
/** No Node 24 on this PATH: bin/keyvalet must find the package's own. */
const PATH = '/usr/local/bin:/usr/bin:/bin'

describe('bin/keyvalet through symlinks and from an npm package', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyvalet-install-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('--version prints the package version', async () => {
    const { stdout } = await run(BIN, ['--version'], { env: { PATH }, timeout: 15_000 })
    assert.equal(stdout, `keyvalet ${VERSION}\n`)
  })

  it('runs through a symlink in another folder, a chain of relative links, and a link found on PATH', async () => {
    const links = join(dir, 'links')
    mkdirSync(join(links, 'nested'), { recursive: true })
    symlinkSync(BIN, join(links, 'keyvalet'))
    symlinkSync('../keyvalet', join(links, 'nested', 'kv'))
    for (const [file, env] of [[join(links, 'keyvalet'), { PATH }], [join(links, 'nested', 'kv'), { PATH }], ['kv', { PATH: `${join(links, 'nested')}:${PATH}` }]] as const) {
      const { stdout } = await run(file, ['--version'], { env, cwd: dir, timeout: 15_000 })
      assert.equal(stdout, `keyvalet ${VERSION}\n`, file)
    }
  })

  let tarball: string
  const pack = async (): Promise<string> => {
    if (tarball !== undefined) return tarball
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, env: { ...process.env, npm_config_loglevel: 'silent' }, timeout: 60_000 })
    tarball = join(dir, packed.trim().split('\n').at(-1) ?? '')
    return tarball
  }

  it('runs from the tarball npm pack makes, laid out as npm install -g lays it out (under lib/node_modules, linked from bin)', { timeout: 90_000 }, async () => {
    const tarball = await pack()
    const prefix = join(dir, 'prefix')
    const installed = join(prefix, 'lib', 'node_modules', 'keyvalet')
    mkdirSync(installed, { recursive: true })
    mkdirSync(join(prefix, 'bin'))
    await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'])
    // The dependencies npm would install beside it (offline here: the project's own, the pinned Node included).
    symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'))
    symlinkSync('../lib/node_modules/keyvalet/bin/keyvalet', join(prefix, 'bin', 'keyvalet'))
    const { stdout: files } = await run('tar', ['-tzf', tarball])
    assert.ok(!/\.test\.ts$/m.test(files), 'tests are not packed')
    assert.ok(!/^package\/(test|bench|deploy|\.keyvalet)\//m.test(files), files)

    const env = { PATH: `${join(prefix, 'bin')}:${PATH}`, HOME: dir }
    const { stdout: version } = await run('keyvalet', ['--version'], { env, cwd: dir, timeout: 15_000 })
    assert.equal(version, `keyvalet ${VERSION}\n`)
    // The whole flow, audit writer thread included, from files under node_modules.
    const { stdout, stderr } = await run('keyvalet', ['demo'], { env, cwd: dir, timeout: 60_000 })
    assert.match(stdout, /audit verify: ok, 2 records/)
    assert.equal(stderr, '')
  })

  it('runs as a project\'s dependency, as npx runs it (node_modules/.bin/keyvalet, Node 24 hoisted beside it)', { timeout: 60_000 }, async () => {
    const tarball = await pack()
    const modules = join(dir, 'project', 'node_modules')
    mkdirSync(join(modules, 'keyvalet'), { recursive: true })
    mkdirSync(join(modules, '.bin'))
    await run('tar', ['-xzf', tarball, '-C', join(modules, 'keyvalet'), '--strip-components=1'])
    // What npm hoists beside it: the dependencies, and the pinned Node's bin link.
    for (const dependency of Object.keys(PACKAGE.dependencies)) symlinkSync(join(ROOT, 'node_modules', dependency), join(modules, dependency))
    symlinkSync(join(ROOT, 'node_modules', '.bin', 'node'), join(modules, '.bin', 'node'))
    symlinkSync('../keyvalet/bin/keyvalet', join(modules, '.bin', 'keyvalet'))
    const { stdout } = await run(join(modules, '.bin', 'keyvalet'), ['--version'], { env: { PATH }, cwd: join(dir, 'project'), timeout: 15_000 })
    assert.equal(stdout, `keyvalet ${VERSION}\n`)
    const { stdout: checked } = await run(join(modules, '.bin', 'keyvalet'), ['check', join(modules, 'keyvalet', 'examples', 'keyvalet.yaml')], { env: { PATH }, cwd: join(dir, 'project'), timeout: 15_000 })
    assert.match(checked, /^ok: .*4 connectors/m)
  })
})
