import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkGrantsAgainstPolicy, formatGrant, grantApproval, parseGrant } from './grant.ts'
import { compilePathPattern } from './path-pattern.ts'
import { OperatorError } from '../errors.ts'
import { parseConfig } from '../config/load.ts'
import type { Connector, Policy, Rule, Severity } from '../model/policy.ts'

describe('parseGrant', () => {
  const valid = [
    ['github:read', { connector: 'github', maxSeverity: 'read', rules: undefined }],
    ['github:admin', { connector: 'github', maxSeverity: 'admin', rules: undefined }],
    ['my-api:write:create-issue', { connector: 'my-api', maxSeverity: 'write', rules: ['create-issue'] }],
    ['github:write:read-issues,create_issue.v2', { connector: 'github', maxSeverity: 'write', rules: ['read-issues', 'create_issue.v2'] }],
    ['  github:read  ', { connector: 'github', maxSeverity: 'read', rules: undefined }],
    ['github:write+approval', { connector: 'github', maxSeverity: 'write', rules: undefined, approval: {} }],
    ['github:write:create-issue+approval=5m', { connector: 'github', maxSeverity: 'write', rules: ['create-issue'], approval: { timeoutMs: 300_000 } }],
  ] as const
  for (const [text, grant] of valid) {
    it(`reads ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseGrant(text), grant)
    })
  }

  const invalid = [
    ['github', /two or three parts/],
    ['github:read:a:b', /two or three parts/],
    ['GitHub:read', /not a connector name/],
    [':read', /not a connector name/],
    ['github:owner', /severity must be one of read, write, admin/],
    ['github:Read', /severity must be one of/],
    ['github:read:', /"" is not a rule id/],
    ['github:read:a,,b', /"" is not a rule id/],
    ['github:read:a, b', /" b" is not a rule id/],
    ['github:read:a,a', /listed twice/],
    ['github:read+', /only approval or approval=DURATION/],
    ['github:read+approve', /only approval or approval=DURATION/],
    ['github:read+approval=', /"" is not a duration/],
    ['github:read+approval=5', /"5" is not a duration/],
    ['github:read+approval=2d', /"2d" is not a duration/],
    ['github:read+approval=0s', /at least 1s and at most 1h/],
    ['github:read+approval=61m', /at least 1s and at most 1h/],
    ['github:read+approval+approval', /only approval or approval=DURATION/],
  ] as const
  for (const [text, message] of invalid) {
    it(`refuses ${JSON.stringify(text)} with an operator error that shows the syntax`, () => {
      assert.throws(
        () => parseGrant(text),
        (err) => err instanceof OperatorError && message.test(err.message) && /connector:severity:rule1,rule2/.test(err.hint ?? ''),
      )
    })
  }
})

describe('formatGrant', () => {
  it('round-trips through parseGrant', () => {
    for (const text of ['github:read', 'github:write:create-issue', 'github:admin:a,b', 'github:read+approval', 'github:write:a,b+approval=90s']) {
      assert.equal(formatGrant(parseGrant(text)), text)
    }
  })

  it('writes an approval wait in seconds, which parseGrant reads back to the same grant', () => {
    const grant = parseGrant('github:read+approval=2m')
    assert.equal(formatGrant(grant), 'github:read+approval=120s')
    assert.deepEqual(parseGrant(formatGrant(grant)), grant)
  })
})

describe('grantApproval', () => {
  const read = { id: 'list-issues', severity: 'read' } as const
  const write = { id: 'create-issue', severity: 'write' } as const
  const of = (...texts: string[]) => texts.map(parseGrant)
  it('needs approval when every grant covering the rule says +approval, with the first one\'s wait', () => {
    assert.deepEqual(grantApproval(of('github:write+approval=30s', 'github:read+approval'), 'github', read), { timeoutMs: 30_000 })
    assert.deepEqual(grantApproval(of('other:admin', 'github:write:create-issue+approval'), 'github', write), {})
  })
  it('needs none when a grant covering the rule needs none (grants add up), or when none covers it', () => {
    assert.equal(grantApproval(of('github:write+approval', 'github:read'), 'github', read), undefined)
    assert.equal(grantApproval(of('github:read'), 'github', read), undefined)
    assert.equal(grantApproval(of('github:read+approval'), 'github', write), undefined, 'not covered: decide refuses it')
    assert.equal(grantApproval(of('github:write:other+approval'), 'github', write), undefined)
  })
  it('ignores a grant of another connector, or one whose rules leave the rule out', () => {
    assert.deepEqual(grantApproval(of('github:write:create-issue+approval', 'gitlab:admin', 'github:write:list-issues'), 'github', write), {})
  })
})

function rule(id: string, severity: Severity): Rule {
  return {
    id,
    connector: 'github',
    methods: new Set(['GET']),
    paths: [compilePathPattern('/**')],
    severity,
    query: [],
    allowOtherQuery: true,
    headers: [],
    body: undefined,
    allowBody: false,
    websocket: false,
  }
}

const github: Connector = {
  name: 'github',
  upstream: new URL('https://api.github.com'),
  allowInsecure: false,
  ca: undefined,
  credential: undefined,
  placeholder: undefined,
  allowAddresses: [],
  upstreamProxy: undefined,
  rules: [rule('read-issues', 'read'), rule('create-issue', 'write'), rule('delete-repo', 'admin')],
}
const writeOnly: Connector = { ...github, name: 'deployer', rules: [rule('deploy', 'write')] }
const policy: Policy = { connectors: new Map([['github', github], ['deployer', writeOnly]]) }

describe('checkGrantsAgainstPolicy', () => {
  const cases = [
    ['a grant of a whole connector is fine', 'github:read', []],
    ['a grant naming rules within its severity is fine', 'github:write:read-issues,create-issue', []],
    ['an unknown connector is reported', 'gitlab:read', ['grant gitlab:read: no connector named gitlab is configured']],
    ['an unknown rule id is reported', 'github:read:read-issue', ['grant github:read:read-issue: connector github has no rule read-issue']],
    [
      'a rule above the grant severity is reported',
      'github:write:create-issue,delete-repo',
      ["grant github:write:create-issue,delete-repo: rule delete-repo is admin, above the grant's write"],
    ],
    [
      'a whole-connector grant below every rule is reported',
      'deployer:read',
      ['grant deployer:read: connector deployer has no rule at severity read or below'],
    ],
  ] as const
  for (const [name, text, problems] of cases) {
    it(name, () => {
      assert.deepEqual(checkGrantsAgainstPolicy([parseGrant(text)], policy), problems)
    })
  }

  it('reports an empty rule list, which grants nothing', () => {
    assert.deepEqual(checkGrantsAgainstPolicy([{ connector: 'github', maxSeverity: 'read', rules: [] }], policy), [
      'grant github:read:: the rule list is empty, so it grants nothing',
    ])
  })

  it('reports +approval on an aws_sigv4 connector, whose signature would change what was approved', () => {
    const signed: Connector = { ...github, name: 's3', credential: { secret: 'aws', source: { type: 'static', options: {} }, kind: 'aws_sigv4', options: {} } }
    const withS3: Policy = { connectors: new Map([['s3', signed]]) }
    assert.deepEqual(checkGrantsAgainstPolicy([parseGrant('s3:read+approval')], withS3), [
      'grant s3:read+approval: connector s3 signs its requests with aws_sigv4, after an approval would be given, so its grants cannot ask for approval',
    ])
    assert.deepEqual(checkGrantsAgainstPolicy([parseGrant('s3:read')], withS3), [])
  })

  it('reports the problems of every grant in order', () => {
    const problems = checkGrantsAgainstPolicy([parseGrant('gitlab:read'), parseGrant('github:read:nope')], policy)
    assert.equal(problems.length, 2)
  })
})

describe('checkGrantsAgainstPolicy on an MCP connector', () => {
  const config = parseConfig(`version: 1
connectors:
  tracker:
    upstream: https://mcp.example
    mcp:
      tools:
        - { id: list, name: list_issues, severity: read }
        - { id: delete, name: "delete_*", severity: admin }
`, 'k.yaml')
  it('knows its tool rules by id and severity, like HTTP rules', () => {
    assert.deepEqual(checkGrantsAgainstPolicy([parseGrant('tracker:read'), parseGrant('tracker:read:list')], config.policy), [])
    assert.deepEqual(checkGrantsAgainstPolicy([parseGrant('tracker:write:delete')], config.policy), ["grant tracker:write:delete: rule delete is admin, above the grant's write"])
  })
})
