import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

describe('keyvalet suggest: draft rules from the denials in the audit, printed and never applied', () => {
  let upstream: Upstream
  let kv: TestKeyvalet

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  gh:
    upstream: ${upstream.url}/api/v3
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules:
      - { id: issues, methods: [GET], path: "/repos/:owner/:repo/issues", severity: read }
`)
    const { key } = await kv.mintKey(['gh:admin'])
    for (const [method, path] of [
      ['GET', '/repos/acme/widgets/pulls'], ['GET', '/repos/acme/gadgets/pulls'], ['GET', '/repos/acme/widgets/pulls'],
      ['POST', '/repos/acme/widgets/issues'], ['DELETE', '/repos/acme/widgets'], ['GET', '/repos/acme/widgets/issues'],
    ] as const) {
      const res = await request(`${kv.url}/gh${path}`, { method, headers: { authorization: `Bearer ${key}` } })
      await res.body.text()
    }
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  it('prints the narrowest pattern per connector and method, with the severity the method implies; the config is unchanged', async () => {
    const env = { KEYVALET_MASTER_KEY: kv.masterKey }
    const out = await cli(['suggest', '--config', kv.configFile, '--since', '1h'], { env })
    assert.equal(out.code, 0, out.stderr)
    const yaml = out.stdout.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n')
    assert.equal(yaml, [
      'connectors:',
      '  gh:',
      '    rules:',
      '      - { id: suggested-get-1, methods: [GET], path: "/repos/acme/:p3/pulls", severity: read }',
      '      - { id: suggested-post-1, methods: [POST], path: "/repos/acme/widgets/issues", severity: write }',
      '      - { id: suggested-delete-1, methods: [DELETE], path: "/repos/acme/widgets", severity: admin }',
      '',
    ].join('\n'))
    assert.match(out.stdout, /# 3 denied .* e\.g\. "\/repos\/acme\/widgets\/pulls", "\/repos\/acme\/gadgets\/pulls"/)
    // The drafts are valid rules of the connector (pasted in, they load) and were not applied.
    const drafts = out.stdout.split('\n').filter((l) => l.startsWith('      - ')).join('\n')
    assert.doesNotThrow(() => parseConfig(`version: 1\nconnectors:\n  gh:\n    upstream: https://api.example\n    rules:\n${drafts}\n`, 'drafts.yaml'))
    const json = JSON.parse((await cli(['suggest', '--config', kv.configFile, '--json'], { env })).stdout) as { id: string; count: number }[]
    assert.deepEqual(json.map((d) => [d.id, d.count]), [['suggested-get-1', 3], ['suggested-post-1', 1], ['suggested-delete-1', 1]])
    const later = await cli(['suggest', '--config', kv.configFile, '--since', new Date(Date.now() + 60_000).toISOString()], { env })
    assert.equal(later.stdout.trim(), '# no denials that a rule could fix')
    const bad = await cli(['suggest', '--config', kv.configFile, '--since', 'yesterday'], { env })
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /--since: not a time or a duration/)
  })
})
