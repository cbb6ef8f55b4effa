import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { cli } from '../helpers/cli.ts'

const dir = mkdtempSync(join(tmpdir(), 'kv-explain-'))
const configFile = join(dir, 'keyvalet.yaml')
writeFileSync(configFile, `version: 1
budgets:
  gh-rate: { per: agent, connector: gh, window: 1m, requests: 60 }
connectors:
  gh:
    upstream: https://api.github.com
    rules:
      - { id: list-issues, methods: [GET], path: "/repos/:o/:r/issues", severity: read, query: { state: { pattern: "open|closed" } } }
      - { id: create-issue, methods: [POST], path: "/repos/:o/:r/issues", severity: write, body: { type: object, required: [title], properties: { title: { type: string } } } }
      - { id: repo, methods: [GET], path: "/repos/:o/:r", severity: read, mode: report }
`)
const bodyFile = join(dir, 'body.json')
writeFileSync(bodyFile, '{"title":1}')

describe('keyvalet explain: each step of one decision, on the command line', () => {
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('prints the connector, each rule and why it does or does not fit, the severities, the decision and code, and what it does not evaluate', async () => {
    const out = await cli(['explain', '--config', configFile, '--grant', 'gh:write', 'POST', 'https://api.github.com/repos/o/r/issues', '--header', 'Content-Type: application/json', '--body', bodyFile])
    assert.equal(out.code, 0, out.stderr)
    const lines = out.stdout.split('\n')
    assert.equal(lines[0], 'POST https://api.github.com/repos/o/r/issues')
    assert.match(lines[1] ?? '', /connector: gh, by the forward request's origin .*path below it \/repos\/o\/r\/issues/)
    assert.match(out.stdout, /list-issues \(read\): not for this method; its methods GET do not include "POST"/)
    assert.match(out.stdout, /create-issue \(write\): refuses: body_not_allowed; rule create-issue: .*<- decides/)
    assert.match(out.stdout, /repo \(read, report mode\): not for this path/)
    assert.match(out.stdout, /severity: {2}needed write, granted write/)
    assert.match(out.stdout, /outcome: {3}refused with policy_denied/)
    assert.match(out.stdout, /not evaluated here[\s\S]*egress address check: the addresses api\.github\.com resolves to/)

    const allowed = await cli(['explain', '--config', configFile, '--grant', 'gh:read', 'get', '/gh/repos/o/r/issues?state=open'])
    assert.match(allowed.stdout, /decision: {2}allow rule_matched \(rule list-issues\)/)
    assert.match(allowed.stdout, /budgets and rate limits: budgets gh-rate apply/)
    const reported = await cli(['explain', '--config', configFile, '--grant', 'gh:read:list-issues', 'GET', '/gh/repos/o/r'])
    assert.match(reported.stdout, /outcome: {3}forwarded anyway: report mode, audited as would_deny/)
    const unknown = JSON.parse((await cli(['explain', '--config', configFile, '--grant', 'gh:read', '--json', 'GET', '/nope/x'])).stdout) as { reason: string; code: string }
    assert.deepEqual([unknown.reason, unknown.code], ['connector_unknown', 'connector_unknown'])
  })

  it('refuses bad input with a clear one-line error', async () => {
    const noGrant = await cli(['explain', '--config', configFile, 'GET', '/gh/x'])
    assert.deepEqual([noGrant.code, noGrant.stderr.split('\n')[0]], [1, 'keyvalet explain: --grant is required'])
    const badGrant = await cli(['explain', '--config', configFile, '--grant', 'gh:root', 'GET', '/gh/x'])
    assert.match(badGrant.stderr, /invalid grant "gh:root"/)
    const badUrl = await cli(['explain', '--config', configFile, '--grant', 'gh:read', 'GET', 'ftp://x/y'])
    assert.match(badUrl.stderr, /url must be a gateway path/)
    const noBody = await cli(['explain', '--config', configFile, '--grant', 'gh:read', '--body', join(dir, 'missing'), 'GET', '/gh/x'])
    assert.match(noBody.stderr, /--body: cannot read/)
    assert.doesNotMatch(noBody.stderr + badUrl.stderr, /\n {4}at /, 'no stack trace')
  })
})
