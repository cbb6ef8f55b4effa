import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { cli, MAIN } from '../helpers/cli.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const PAGE = 4096
const REQUESTS = 120

/**
 * Overwrites `length` bytes at `offset` into a page of `file` in its middle that holds rows
 * (SQLite's page size here is 4096): the middle page itself may be an empty table's or free space,
 * where SQLite rightly finds nothing wrong. `marker` is text every row of the file's main table has.
 */
function overwriteMiddlePage(file: string, offset: number, length: number, marker: string): void {
  const bytes = readFileSync(file)
  const pages = Math.floor(bytes.length / PAGE)
  const holdsRows = (page: number): boolean => page > 0 && bytes.subarray(page * PAGE, (page + 1) * PAGE).includes(marker)
  const order = Array.from({ length: pages }, (_, i) => i).sort((a, b) => Math.abs(a - pages / 2) - Math.abs(b - pages / 2))
  const middle = order.find(holdsRows)
  if (middle === undefined) throw new Error(`no page of ${file} holds ${marker}`)
  const fd = openSync(file, 'r+')
  writeSync(fd, Buffer.alloc(length, 0xa5), 0, length, middle * PAGE + offset)
  closeSync(fd)
}

/** `keyvalet start` as a subprocess, once it listens; stop() sends SIGTERM and waits for the exit. */
async function startServing(configFile: string, env: NodeJS.ProcessEnv): Promise<{ url: string; stdout: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [MAIN, 'start', '--config', configFile], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`start did not listen: ${stdout}`)), 20_000)
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
      const match = /gateway listening on (http:\/\/\S+)/.exec(stdout)
      if (match?.[1] !== undefined) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    child.on('exit', (code) => reject(new Error(`start exited ${code}: ${stdout}`)))
  })
  return {
    url,
    stdout,
    async stop() {
      const exited = new Promise((resolve) => child.on('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

describe('a damaged database', () => {
  let upstream: Upstream
  let root: string
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  const config = (dir: string) => join(dir, 'keyvalet.yaml')
  const data = (dir: string, name: string) => join(dir, 'data', name)

  /** A copy of the folder keyvalet made (config and data), to damage. */
  const copy = (): string => {
    const dir = mkdtempSync(join(root, 'case-'))
    cpSync(join(root, 'made'), dir, { recursive: true })
    return dir
  }

  before(async () => {
    upstream = await startUpstream()
    root = mkdtempSync(join(tmpdir(), 'keyvalet-damaged-'))
    const dir = join(root, 'made')
    mkdirSync(dir)
    writeFileSync(config(dir), `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./data
connectors:
  up:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
    // Real files, made by keyvalet itself: a session, then requests audited by a running start.
    const created = await cli(['session', 'create', '--config', config(dir), '--agent', 'a', '--user', 'u', '--workspace', 'w', '--grant', 'up:read', '--json'], { env })
    assert.equal(created.code, 0, created.stderr)
    const { key } = JSON.parse(created.stdout) as { key: string }
    const started = await startServing(config(dir), env)
    for (let i = 0; i < REQUESTS; i++) {
      const res = await request(`${started.url}/up/items/${i}?pad=${'x'.repeat(200)}`, { headers: { authorization: `Bearer ${key}` } })
      await res.body.dump()
      assert.equal(res.statusCode, 200)
    }
    await started.stop()
  })
  after(async () => {
    rmSync(root, { recursive: true, force: true })
    await upstream.close()
  })

  it('sound: start checks both files and serves; db check reports every page sound and the chain intact', async () => {
    const dir = copy()
    const started = await startServing(config(dir), env)
    await started.stop()
    assert.match(started.stdout, /^checked keyvalet\.db: every page \(quick_check\), \d+ ms$/m)
    assert.match(started.stdout, /^checked keyvalet-audit\.db: every page \(quick_check\), \d+ ms$/m)
    const check = await cli(['db', 'check', '--config', config(dir)], { env })
    assert.equal(check.code, 0, check.stdout + check.stderr)
    assert.match(check.stdout, new RegExp(`^${data(dir, 'keyvalet.db')}: ok \\(every page, indexes against tables`, 'm'))
    assert.match(check.stdout, new RegExp(`^${data(dir, 'keyvalet-audit.db')}: ok \\(every page, indexes against tables`, 'm'))
    assert.match(check.stdout, new RegExp(`^audit chain: ok: ${REQUESTS} records in 1 chain, every chain intact`, 'm'))
    assert.match(check.stdout, /^result: sound$/m)
  })

  const cases: [string, string, (file: string) => void, RegExp][] = [
    ['bytes overwritten in the middle of the audit log', 'keyvalet-audit.db', (f) => overwriteMiddlePage(f, 8, 64, 'request_id'), /out of range|malformed|invalid page|btreeInitPage/],
    ['a whole page overwritten in the middle of the audit log', 'keyvalet-audit.db', (f) => overwriteMiddlePage(f, 0, PAGE, 'request_id'), /malformed/],
    ['bytes overwritten in the middle of keyvalet.db', 'keyvalet.db', (f) => overwriteMiddlePage(f, 8, 64, 'ses_'), /out of range|malformed|invalid page|btreeInitPage/],
    ['a truncated audit log', 'keyvalet-audit.db', (f) => truncateSync(f, Math.floor(statSync(f).size / 2)), /malformed/],
    ['keyvalet.db replaced by a file that is not a database', 'keyvalet.db', (f) => writeFileSync(f, 'not a database, but an operator mistake\n'.repeat(200)), /not a database/],
  ]
  for (const [what, name, damage, found] of cases) {
    it(`${what}: start refuses before listening, naming the file and what to do; db check reports it`, async () => {
      const dir = copy()
      const damaged = data(dir, name)
      const sound = data(dir, name === 'keyvalet.db' ? 'keyvalet-audit.db' : 'keyvalet.db')
      damage(damaged)
      const bytes = readFileSync(damaged)

      const start = await cli(['start', '--config', config(dir)], { env, timeoutMs: 20_000 })
      assert.equal(start.code, 1, start.stdout + start.stderr)
      assert.doesNotMatch(start.stdout, /listening on/)
      assert.match(start.stderr, new RegExp(`^keyvalet start: the database ${damaged} is damaged \\(`, 'm'))
      assert.match(start.stderr, found)
      assert.match(start.stderr, /^hint: .*restore it from your last backup, then run keyvalet db check/m)
      assert.doesNotMatch(start.stderr, /unexpected error|\n\s+at /, 'no stack trace')
      assert.doesNotMatch(start.stderr, new RegExp(sound.replaceAll('.', '\\.')), 'the sound file is not blamed')

      const check = await cli(['db', 'check', '--config', config(dir)], { env })
      assert.equal(check.code, 1, check.stdout + check.stderr)
      assert.match(check.stdout, new RegExp(`^${damaged}: DAMAGED \\(`, 'm'))
      assert.match(check.stdout, found)
      assert.match(check.stdout, new RegExp(`^${sound}: ok `, 'm'))
      assert.match(check.stdout, /^audit chain: not verified: repair the damaged file first/m)
      assert.match(check.stdout, /^result: DAMAGED: .*restore it from your last backup/m)
      assert.ok(readFileSync(damaged).equals(bytes), 'neither command wrote to the damaged file')
    })
  }

  it('other commands on a damaged file name it instead of failing with an unexpected error', async () => {
    const dir = copy()
    const audit = data(dir, 'keyvalet-audit.db')
    overwriteMiddlePage(audit, 0, PAGE, 'request_id')
    for (const action of ['verify', 'tail']) {
      const out = await cli(['audit', action, '-n', '1000', '--config', config(dir)], { env })
      assert.equal(out.code, 1, out.stdout + out.stderr)
      assert.match(out.stderr, new RegExp(`^keyvalet audit: the database ${audit} is damaged \\(database disk image is malformed\\)`, 'm'))
      assert.match(out.stderr, /^hint: .*keyvalet db check/m)
    }
    const state = data(dir, 'keyvalet.db')
    const pages = statSync(state).size / PAGE
    const fd = openSync(state, 'r+')
    for (let page = 1; page < pages; page++) writeSync(fd, Buffer.alloc(PAGE, 0xa5), 0, PAGE, page * PAGE) // all but the header page
    closeSync(fd)
    for (const command of [['session', 'list'], ['secret', 'list']]) {
      const out = await cli([...command, '--config', config(dir)], { env })
      assert.equal(out.code, 1, out.stdout + out.stderr)
      assert.match(out.stderr, new RegExp(`^keyvalet ${command[0]}: the database ${state} is damaged \\(database disk image is malformed\\)`, 'm'))
    }
  })
})
