/**
 * What an operator sees from the CLI: messages that say what is wrong and where to look, lists
 * without keyvalet's own records, limits on what can be minted.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { cli } from '../helpers/cli.ts'

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
})
