import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import type { GitHubAppOptions } from './github-app.ts'

/** A config with one github_app connector; `block` is the credential's github_app block, indented by the caller. */
function config(credential: string): string {
  return `version: 1
connectors:
  gh:
    upstream: https://api.github.com
    credential:
${credential}
    rules: [{ id: r, methods: [GET], path: /repos/**, severity: read }]
`
}

const VALID = `      source: github_app
      secret: gh-app-key
      inject: bearer
      github_app:
        app_id: 12
        installation_id: 34
        repositories: [acme/app]
        permissions:
          read: { contents: read, metadata: read }
          write: { contents: write, pull_requests: write }`

function problems(text: string): string[] {
  try {
    parseConfig(text, 'k.yaml')
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err))
    return err.message.split('\n').filter((l) => l.startsWith('k.yaml:'))
  }
  assert.fail('expected the configuration to be refused')
}

describe('github_app configuration', () => {
  it('compiles cumulative permissions per severity, repository names and the owner', () => {
    const options = parseConfig(config(VALID), 'k.yaml').policy.connectors.get('gh')?.credential?.source.options as GitHubAppOptions
    assert.deepEqual(options.permissions, {
      read: { contents: 'read', metadata: 'read' },
      write: { contents: 'write', metadata: 'read', pull_requests: 'write' },
      admin: { contents: 'write', metadata: 'read', pull_requests: 'write' },
    })
    assert.deepEqual([options.appId, options.installationId, options.repositories, options.owner, options.apiUrl.href, options.secret],
      ['12', 34, ['app'], 'acme', 'https://api.github.com/', 'gh-app-key'])
  })

  const broken: [string, string, string[]][] = [
    ['a read token asking for write access', VALID.replace('read: { contents: read,', 'read: { contents: write,'),
      ['k.yaml:14: connectors.gh.credential.github_app.permissions.read.contents: a read session\'s token cannot carry write access (at most read)']],
    ['a write token asking for admin access', VALID.replace('pull_requests: write', 'pull_requests: admin'),
      ['k.yaml:15: connectors.gh.credential.github_app.permissions.write.pull_requests: a write session\'s token cannot carry admin access (at most write)']],
    ['no permissions at all', VALID.replace(/permissions:[\s\S]*$/, 'permissions: {}'),
      ['k.yaml:13: connectors.gh.credential.github_app.permissions: must name at least one permission (without, GitHub would grant every permission of the installation)']],
    ['an unknown access level', VALID.replace('metadata: read', 'metadata: maintain'),
      ['k.yaml:14: connectors.gh.credential.github_app.permissions.read.metadata: must be one of read, write, admin']],
    ['repositories of two owners', VALID.replace('[acme/app]', '[acme/app, other/lib]'),
      ['k.yaml:12: connectors.gh.credential.github_app.repositories: all repositories must have the same owner (one installation covers one account); give names alone or owner/name for all']],
    ['a malformed repository', VALID.replace('[acme/app]', '["acme/app/x"]'),
      ['k.yaml:12: connectors.gh.credential.github_app.repositories[0]: must be a repository name, or owner/name']],
    ['no repositories', VALID.replace('repositories: [acme/app]', 'repositories: []'),
      ['k.yaml:12: connectors.gh.credential.github_app.repositories: must not have fewer than 1 items']],
    ['an api_url that is not a URL', VALID.replace('installation_id: 34', 'installation_id: 34\n        api_url: api.github.com'),
      ['k.yaml:12: connectors.gh.credential.github_app.api_url: must be an absolute URL']],
    ['an api_url with a query', VALID.replace('installation_id: 34', 'installation_id: 34\n        api_url: https://ghe.example/api/v3?x=1'),
      ['k.yaml:12: connectors.gh.credential.github_app.api_url: must not contain user info, a query or a fragment']],
    ['no secret for the App key', VALID.replace('      secret: gh-app-key\n', ''),
      ['k.yaml:5: connectors.gh.credential: missing required field secret (for source: github_app)']],
    ['no github_app block', VALID.replace(/      github_app:[\s\S]*$/, '').trimEnd(),
      ['k.yaml:5: connectors.gh.credential: missing required field github_app (for source: github_app)']],
    ['an unknown field in the block', VALID.replace('app_id: 12', 'app_id: 12\n        private_key: x'),
      ['k.yaml:11: connectors.gh.credential.github_app.private_key: unknown field (expected one of: app_id, installation_id, api_url, repositories, permissions)']],
  ]
  for (const [name, credential, expected] of broken) {
    it(`refuses ${name}, naming file, line and field`, () => {
      assert.deepEqual(problems(config(credential)), expected)
    })
  }
})
