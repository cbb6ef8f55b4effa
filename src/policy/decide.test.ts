import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { argsFor, decide } from './decide.ts'
import { parseGrant } from './grant.ts'
import { compilePathPattern } from './path-pattern.ts'
import type { BodyFacts, Decision } from './decision.ts'
import type { BodyValidator, Connector, Rule, Severity, ValueConstraint } from '../model/policy.ts'

/** Stands in for a compiled JSON Schema: requires { title: string }. */
const needsTitle: BodyValidator = {
  check: (v) => (typeof v === 'object' && v !== null && typeof (v as { title?: unknown }).title === 'string' ? undefined : '/title must be string'),
}

function constraint(name: string, pattern?: string, required = false): ValueConstraint {
  return { name, pattern: pattern === undefined ? undefined : new RegExp(`^(?:${pattern})$`, 'u'), required }
}

function rule(id: string, methods: string, path: string | string[], severity: Severity, extra: Partial<Rule> = {}): Rule {
  return {
    id,
    connector: 'github',
    methods: new Set(methods.split(',')),
    paths: (typeof path === 'string' ? [path] : path).map(compilePathPattern),
    severity,
    query: [],
    allowOtherQuery: true,
    headers: [],
    body: undefined,
    allowBody: extra.body !== undefined,
    websocket: false,
    ...extra,
  }
}

const github: Connector = {
  name: 'github',
  upstream: new URL('https://api.github.com'),
  allowInsecure: false,
  ca: undefined,
  credential: { secret: 'github-token', source: { type: 'static', options: { secret: 'github-token' } }, kind: 'bearer', options: {} },
  placeholder: undefined,
  allowAddresses: [],
  upstreamProxy: undefined,
  rules: [
    rule('read-issues', 'GET,HEAD', ['/repos/o/r/issues', '/repos/o/r/issues/**'], 'read', { query: [constraint('state', 'open|closed|all')] }),
    rule('create-issue', 'POST', '/repos/o/r/issues', 'write', { body: needsTitle }),
    rule('delete-issue', 'DELETE', '/repos/o/r/issues/*', 'admin'),
    rule('search', 'GET', '/search', 'read', { query: [constraint('q', undefined, true)], allowOtherQuery: false }),
    rule('meta', 'GET', '/meta', 'read', { headers: [constraint('accept', 'application/json')] }),
    rule('comment-json', 'POST', '/comments', 'write', { headers: [constraint('content-type', 'application/json')], body: needsTitle }),
    // First match: the narrow rule comes before the broad one on the same path.
    rule('my-things', 'GET', '/things', 'read', { query: [constraint('mine', 'true', true)] }),
    rule('all-things', 'GET', '/things', 'write'),
    // A body-constrained rule before an unconstrained one on the same path.
    rule('upload-titled', 'POST', '/uploads', 'write', { body: needsTitle }),
    rule('upload-any', 'POST', '/uploads', 'admin'),
    // Methods that take no body, unless the rule says so.
    rule('search-with-body', 'GET', '/indexes/*/search', 'read', { allowBody: true }),
    rule('remove-labels', 'DELETE', '/repos/o/r/issues/*/labels', 'write', { body: needsTitle }),
    rule('options', 'OPTIONS', '/options', 'read'),
  ],
}

type Expect = readonly ['allow', string] | readonly ['deny', string, string | undefined] | readonly ['need_body']

interface Case {
  readonly name: string
  readonly grants: string
  readonly method: string
  readonly target: string
  readonly headers?: Record<string, string | string[]>
  readonly body?: BodyFacts
  readonly carriesBody?: boolean
  readonly expect: Expect
}

function summary(d: Decision): Expect {
  if (d.effect === 'need_body') return ['need_body']
  if (d.effect === 'allow') return ['allow', d.rule.id]
  return ['deny', d.reason, d.rule?.id]
}

function run(c: Omit<Case, 'name' | 'expect'>): Decision {
  const grants = c.grants === '' ? [] : c.grants.split(' ').map(parseGrant)
  const request = { connector: github, grants, method: c.method, target: c.target }
  return decide(argsFor({ ...request, ...(c.headers && { headers: c.headers }), ...(c.body && { body: c.body }), ...(c.carriesBody && { carriesBody: true }) }))
}

const title = { json: { title: 'Bug' } }

const cases: readonly Case[] = [
  // path and method
  { name: 'a path no rule matches is denied with no_rule_for_path', grants: 'github:admin', method: 'GET', target: '/user', expect: ['deny', 'no_rule_for_path', undefined] },
  { name: 'a path whose rules list other methods is denied with method_not_allowed', grants: 'github:admin', method: 'PUT', target: '/repos/o/r/issues', expect: ['deny', 'method_not_allowed', undefined] },
  { name: 'a method is never implied by another: PATCH is not DELETE', grants: 'github:admin', method: 'PATCH', target: '/repos/o/r/issues/1', expect: ['deny', 'method_not_allowed', undefined] },
  { name: 'a read rule allows GET within its grant', grants: 'github:read', method: 'GET', target: '/repos/o/r/issues/1', expect: ['allow', 'read-issues'] },
  { name: 'a read rule allows HEAD when it lists HEAD', grants: 'github:read', method: 'HEAD', target: '/repos/o/r/issues', expect: ['allow', 'read-issues'] },
  // grants
  { name: 'no grant at all is denied with not_in_grant', grants: '', method: 'GET', target: '/repos/o/r/issues', expect: ['deny', 'not_in_grant', 'read-issues'] },
  { name: 'a grant for another connector is denied with not_in_grant', grants: 'gitlab:admin', method: 'GET', target: '/repos/o/r/issues', expect: ['deny', 'not_in_grant', 'read-issues'] },
  { name: 'a grant narrowed to other rules is denied with not_in_grant', grants: 'github:admin:search', method: 'GET', target: '/repos/o/r/issues', expect: ['deny', 'not_in_grant', 'read-issues'] },
  { name: 'a grant narrowed to the rule allows it', grants: 'github:read:read-issues', method: 'GET', target: '/repos/o/r/issues', expect: ['allow', 'read-issues'] },
  { name: 'a rule above the grant severity is denied with severity_exceeds_grant', grants: 'github:write', method: 'DELETE', target: '/repos/o/r/issues/1', expect: ['deny', 'severity_exceeds_grant', 'delete-issue'] },
  { name: 'a narrowed grant naming a rule above its severity is denied with severity_exceeds_grant', grants: 'github:read:delete-issue', method: 'DELETE', target: '/repos/o/r/issues/1', expect: ['deny', 'severity_exceeds_grant', 'delete-issue'] },
  { name: 'with several grants, any one covering the rule allows it', grants: 'github:read github:admin:delete-issue', method: 'DELETE', target: '/repos/o/r/issues/1', expect: ['allow', 'delete-issue'] },
  { name: 'with several grants, severity is reported when a grant in scope is too low', grants: 'github:read github:admin:search', method: 'DELETE', target: '/repos/o/r/issues/1', expect: ['deny', 'severity_exceeds_grant', 'delete-issue'] },
  // query
  { name: 'a query value matching its pattern is allowed', grants: 'github:read', method: 'GET', target: '/repos/o/r/issues?state=open&page=2', expect: ['allow', 'read-issues'] },
  { name: 'a query value not matching its full pattern is denied', grants: 'github:read', method: 'GET', target: '/repos/o/r/issues?state=opened', expect: ['deny', 'query_not_allowed', 'read-issues'] },
  { name: 'a repeated query parameter is denied when any value fails', grants: 'github:read', method: 'GET', target: '/repos/o/r/issues?state=open&state=x', expect: ['deny', 'query_not_allowed', 'read-issues'] },
  { name: 'a required query parameter that is absent is denied', grants: 'github:read', method: 'GET', target: '/search', expect: ['deny', 'query_not_allowed', 'search'] },
  { name: 'an unnamed query parameter is denied when other parameters are not allowed', grants: 'github:read', method: 'GET', target: '/search?q=x&per_page=100', expect: ['deny', 'query_not_allowed', 'search'] },
  { name: 'only named query parameters are allowed when others are not', grants: 'github:read', method: 'GET', target: '/search?q=x', expect: ['allow', 'search'] },
  // headers
  { name: 'a constrained header that matches is allowed', grants: 'github:read', method: 'GET', target: '/meta', headers: { accept: 'application/json' }, expect: ['allow', 'meta'] },
  { name: 'a constrained header that does not match is denied', grants: 'github:read', method: 'GET', target: '/meta', headers: { accept: 'text/html' }, expect: ['deny', 'header_not_allowed', 'meta'] },
  { name: 'a header sent twice is denied when any value fails', grants: 'github:read', method: 'GET', target: '/meta', headers: { accept: ['application/json', 'text/html'] }, expect: ['deny', 'header_not_allowed', 'meta'] },
  { name: 'a constrained but optional header may be absent', grants: 'github:read', method: 'GET', target: '/meta', expect: ['allow', 'meta'] },
  // body
  { name: 'a body-constrained rule asks for the body first', grants: 'github:write', method: 'POST', target: '/repos/o/r/issues', expect: ['need_body'] },
  { name: 'a body that satisfies the schema is allowed on the second call', grants: 'github:write', method: 'POST', target: '/repos/o/r/issues', body: title, expect: ['allow', 'create-issue'] },
  { name: 'a body that fails the schema is denied with body_not_allowed', grants: 'github:write', method: 'POST', target: '/repos/o/r/issues', body: { json: { title: 1 } }, expect: ['deny', 'body_not_allowed', 'create-issue'] },
  { name: 'a body that is not JSON is denied with body_not_allowed', grants: 'github:write', method: 'POST', target: '/repos/o/r/issues', body: { invalid: 'Unexpected end of JSON input' }, expect: ['deny', 'body_not_allowed', 'create-issue'] },
  { name: 'no body is asked for when the grant severity refuses the rule', grants: 'github:read', method: 'POST', target: '/repos/o/r/issues', expect: ['deny', 'severity_exceeds_grant', 'create-issue'] },
  { name: 'no body is asked for when the grant does not include the rule', grants: 'github:write:read-issues', method: 'POST', target: '/repos/o/r/issues', expect: ['deny', 'not_in_grant', 'create-issue'] },
  { name: 'no body is asked for when a header constraint already fails', grants: 'github:write', method: 'POST', target: '/comments', headers: { 'content-type': 'text/plain' }, expect: ['deny', 'header_not_allowed', 'comment-json'] },
  // bodies on methods that take none
  { name: 'a GET with a body is denied with body_unexpected', grants: 'github:read', method: 'GET', target: '/repos/o/r/issues/1', carriesBody: true, expect: ['deny', 'body_unexpected', 'read-issues'] },
  { name: 'a HEAD with a body is denied with body_unexpected', grants: 'github:read', method: 'HEAD', target: '/repos/o/r/issues/1', carriesBody: true, expect: ['deny', 'body_unexpected', 'read-issues'] },
  { name: 'a DELETE with a body is denied with body_unexpected', grants: 'github:admin', method: 'DELETE', target: '/repos/o/r/issues/1', carriesBody: true, expect: ['deny', 'body_unexpected', 'delete-issue'] },
  { name: 'an OPTIONS with a body is denied with body_unexpected', grants: 'github:read', method: 'OPTIONS', target: '/options', carriesBody: true, expect: ['deny', 'body_unexpected', 'options'] },
  { name: 'an OPTIONS without a body is allowed', grants: 'github:read', method: 'OPTIONS', target: '/options', expect: ['allow', 'options'] },
  { name: 'a GET with a body is allowed by a rule that allows one', grants: 'github:read', method: 'GET', target: '/indexes/logs/search', carriesBody: true, expect: ['allow', 'search-with-body'] },
  { name: 'a DELETE with a body is checked against the body schema of its rule', grants: 'github:write', method: 'DELETE', target: '/repos/o/r/issues/1/labels', carriesBody: true, expect: ['need_body'] },
  { name: 'a POST with a body is not concerned', grants: 'github:admin', method: 'POST', target: '/uploads', carriesBody: true, body: { json: {} }, expect: ['allow', 'upload-any'] },
  { name: 'a body the rule does not take is reported over a grant the rule is not in', grants: 'github:read:search', method: 'GET', target: '/repos/o/r/issues/1', carriesBody: true, expect: ['deny', 'body_unexpected', 'read-issues'] },
  // first match and failure priority
  { name: 'the first passing rule in config order allows', grants: 'github:write', method: 'GET', target: '/things?mine=true', expect: ['allow', 'my-things'] },
  { name: 'a later rule allows when an earlier one fails', grants: 'github:write', method: 'GET', target: '/things', expect: ['allow', 'all-things'] },
  { name: 'a rule that fits but exceeds the grant is reported over one that does not fit the query', grants: 'github:read', method: 'GET', target: '/things', expect: ['deny', 'severity_exceeds_grant', 'all-things'] },
  { name: 'a query failure is reported when no rule fits the request', grants: 'github:read', method: 'GET', target: '/search?x=1', expect: ['deny', 'query_not_allowed', 'search'] },
  { name: 'a failing body falls through to a later rule that allows', grants: 'github:admin', method: 'POST', target: '/uploads', body: { json: {} }, expect: ['allow', 'upload-any'] },
  { name: 'the body failure is reported over a later severity failure', grants: 'github:write', method: 'POST', target: '/uploads', body: { json: {} }, expect: ['deny', 'body_not_allowed', 'upload-titled'] },
]

describe('decide', () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(summary(run(c)), c.expect)
    })
  }

  it('returns need_body, then allows once the body is given: the round trip', () => {
    const request = { grants: 'github:admin', method: 'POST', target: '/uploads' }
    assert.deepEqual(summary(run(request)), ['need_body'])
    assert.deepEqual(summary(run({ ...request, body: title })), ['allow', 'upload-titled'])
  })

  it('describes an allow with the rule, its severity, the method and the path pattern', () => {
    const d = run({ grants: 'github:read', method: 'GET', target: '/repos/o/r/issues/7' })
    assert.equal(d.effect === 'allow' && d.detail, 'rule read-issues (read) matched GET /repos/o/r/issues/**')
  })

  it('names parameters and headers in details, never their values', () => {
    const query = run({ grants: 'github:read', method: 'GET', target: '/repos/o/r/issues?state=sekrit-value' })
    const header = run({ grants: 'github:read', method: 'GET', target: '/meta', headers: { accept: 'sekrit-value' } })
    for (const d of [query, header]) {
      assert.equal(d.effect, 'deny')
      assert.ok(d.effect === 'deny' && !d.detail.includes('sekrit'), 'detail must not carry the value')
    }
    assert.match(query.effect === 'deny' ? query.detail : '', /state/)
    assert.match(header.effect === 'deny' ? header.detail : '', /accept/)
  })

  it('bounds a long sandbox-chosen parameter name in the detail', () => {
    const d = run({ grants: 'github:read', method: 'GET', target: `/search?q=x&${'a'.repeat(5000)}=1` })
    assert.ok(d.effect === 'deny' && d.detail.length < 200)
  })

  it('lists the methods the path allows when the method does not match', () => {
    const d = run({ grants: 'github:admin', method: 'PUT', target: '/repos/o/r/issues' })
    assert.match(d.effect === 'deny' ? d.detail : '', /allowed: GET, HEAD, POST/)
  })
})

describe('decide: protocol upgrades', () => {
  const sockets: Connector = { ...github, rules: [rule('socket', 'GET', '/socket', 'read', { websocket: true }), rule('plain', 'GET', '/plain', 'read')] }
  const upgrade = (target: string, protocol: string): Expect =>
    summary(decide({ ...argsFor({ connector: sockets, grants: [parseGrant('github:read')], method: 'GET', target }), upgrade: protocol }))

  it('allows a WebSocket upgrade only on a rule that says websocket', () => {
    assert.deepEqual(upgrade('/socket', 'websocket'), ['allow', 'socket'])
    assert.deepEqual(upgrade('/plain', 'websocket'), ['deny', 'upgrade_not_allowed', 'plain'])
  })

  it('refuses any other upgrade, even where WebSocket is allowed', () => {
    assert.deepEqual(upgrade('/socket', 'h2c'), ['deny', 'upgrade_not_allowed', 'socket'])
  })

  it('still allows the plain request on a websocket rule', () => {
    assert.deepEqual(summary(decide(argsFor({ connector: sockets, grants: [parseGrant('github:read')], method: 'GET', target: '/socket' }))), ['allow', 'socket'])
  })
})

describe('decide: headers the connector guards fit only a rule that names them', () => {
  const guard = { guarded: (name: string) => (name === 'x-amz-acl' || name === 'x-amz-tagging' ? 'changes access' : undefined), names: ['x-amz-acl', 'x-amz-tagging'], others: '' }
  const s3: Connector = {
    ...github,
    name: 's3',
    headerGuard: guard,
    rules: [
      rule('put-any', 'PUT', '/bucket/**', 'write'),
      rule('put-private', 'PUT', '/bucket/**', 'write', { headers: [constraint('x-amz-acl', 'private')] }),
      rule('put-owner', 'PUT', '/owner/**', 'admin', { headers: [constraint('x-amz-acl', 'bucket-owner-full-control')] }),
    ],
  }
  const put = (target: string, headers: Record<string, string>, grants = 's3:admin'): Decision =>
    decide(argsFor({ connector: s3, grants: grants.split(' ').map(parseGrant), method: 'PUT', target, headers }))

  it('lets through headers the guard does not name', () => {
    assert.deepEqual(summary(put('/bucket/a', { 'content-type': 'text/plain', 'x-amz-meta-x': '1' })), ['allow', 'put-any'])
  })

  it('a guarded header the rule does not name is denied with header_not_named, naming the header', () => {
    const d = put('/bucket/a', { 'x-amz-tagging': 'a=b' })
    assert.deepEqual(summary(d), ['deny', 'header_not_named', 'put-any'])
    assert.equal(d.effect === 'deny' ? d.header : undefined, 'x-amz-tagging')
    assert.equal(d.effect === 'deny' ? d.detail : undefined, 'rule put-any does not name header "x-amz-tagging", which changes access')
  })

  it('a later rule that names the guarded header allows it, within its pattern', () => {
    assert.deepEqual(summary(put('/bucket/a', { 'x-amz-acl': 'private' })), ['allow', 'put-private'])
    assert.deepEqual(summary(put('/bucket/a', { 'x-amz-acl': 'public-read' })), ['deny', 'header_not_allowed', 'put-private'])
  })

  it('a rule naming the header but outside the grant is the better story', () => {
    assert.deepEqual(summary(put('/owner/a', { 'x-amz-acl': 'bucket-owner-full-control' }, 's3:write')), ['deny', 'severity_exceeds_grant', 'put-owner'])
  })
})
