import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../config/load.ts'
import { argsFor, decide } from '../policy/decide.ts'
import { parseGrant } from '../policy/grant.ts'
import { parseStrictJson } from '../policy/strict-json.ts'
import { explain } from './explain.ts'

const config = parseConfig(`version: 1
budgets:
  gh-rate: { per: agent, connector: gh, window: 1m, requests: 60 }
  other: { connector: s3, requests: 5 }
connectors:
  gh:
    upstream: https://api.github.com/api/v3
    rules:
      - { id: list-issues, methods: [GET], path: "/repos/:o/:r/issues", severity: read, query: { state: { pattern: "open|closed" } }, allow_other_query: false }
      - { id: create-issue, methods: [POST], path: "/repos/:o/:r/issues", severity: write, body: { type: object, required: [title], properties: { title: { type: string } } } }
      - { id: labels, methods: [PUT], path: "/repos/:o/:r/labels", severity: write, headers: { x-reason: { pattern: "[a-z]+", required: true } } }
      - { id: repo, methods: [GET], path: "/repos/:o/:r", severity: read, mode: report }
      - { id: delete-repo, methods: [DELETE], path: "/repos/:o/:r", severity: admin }
  s3:
    upstream: https://s3.example
    rules:
      - { id: get, methods: [GET], path: "/**", severity: read }
`, '/tmp/explain-test.yaml')

type Case = { grant: string[]; method: string; target: string; headers?: Record<string, string>; body?: string }

const cases: Case[] = [
  { grant: ['gh:read'], method: 'GET', target: '/repos/o/r/issues?state=open' },
  { grant: ['gh:read'], method: 'GET', target: '/repos/o/r/issues?state=all' },
  { grant: ['gh:read'], method: 'GET', target: '/repos/o/r/issues?page=2' },
  { grant: ['gh:read'], method: 'GET', target: '/repos/o/r/pulls' },
  { grant: ['gh:read'], method: 'PATCH', target: '/repos/o/r/issues' },
  { grant: ['gh:read'], method: 'POST', target: '/repos/o/r/issues', headers: { 'content-type': 'application/json' }, body: '{"title":"x"}' },
  { grant: ['gh:write'], method: 'POST', target: '/repos/o/r/issues', headers: { 'content-type': 'application/json' }, body: '{"title":"x"}' },
  { grant: ['gh:write'], method: 'POST', target: '/repos/o/r/issues', headers: { 'content-type': 'application/json' }, body: '{"title":1}' },
  { grant: ['gh:write'], method: 'POST', target: '/repos/o/r/issues', headers: { 'content-type': 'application/json' }, body: '{"title":"a","title":"b"}' },
  { grant: ['gh:write:labels'], method: 'POST', target: '/repos/o/r/issues', headers: { 'content-type': 'application/json' }, body: '{"title":"x"}' },
  { grant: ['gh:write'], method: 'PUT', target: '/repos/o/r/labels', headers: { 'x-reason': 'triage' } },
  { grant: ['gh:write'], method: 'PUT', target: '/repos/o/r/labels', headers: { 'x-reason': 'NOPE!' } },
  { grant: ['gh:write'], method: 'PUT', target: '/repos/o/r/labels' },
  { grant: ['gh:read'], method: 'GET', target: '/repos/o/r', body: 'x' },
  { grant: ['s3:read'], method: 'GET', target: '/repos/o/r' },
  { grant: ['gh:read'], method: 'DELETE', target: '/repos/o/r' },
  { grant: ['gh:admin'], method: 'DELETE', target: '/repos/o/r' },
  { grant: ['gh:admin:delete-repo'], method: 'GET', target: '/repos/o/r' },
]

function explained(c: Case) {
  return explain(config.policy, { grants: c.grant.map(parseGrant), method: c.method, url: `/gh${c.target}`, headers: c.headers ?? {}, body: c.body }, config.budgets)
}

/** decide itself, as the data plane's decide stage calls it: first without the body, then with it when asked. */
function decided(c: Case) {
  const connector = config.policy.connectors.get('gh')
  assert.ok(connector !== undefined)
  const headers = { ...c.headers, ...(c.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(c.body)) }) }
  const args = argsFor({ connector, grants: c.grant.map(parseGrant), method: c.method, target: c.target, headers, carriesBody: c.body !== undefined })
  const first = decide(args)
  return first.effect === 'need_body' ? decide({ ...args, body: parseStrictJson(Buffer.from(c.body ?? '')) }) : first
}

describe('explain: decide\'s own decision, with each rule\'s step', () => {
  it('decides every case exactly as policy/decide.ts does', () => {
    for (const c of cases) {
      const e = explained(c)
      const d = decided(c)
      assert.ok(d.effect !== 'need_body')
      const label = `${c.grant.join(',')} ${c.method} ${c.target}`
      assert.deepEqual([e.decision, e.reason, e.rule, e.detail], [d.effect, d.reason, d.rule?.id ?? null, d.detail], label)
      // The rule that decided has a step that says the same.
      const allowing = e.rules.find((s) => s.outcome === 'allow')
      if (e.decision === 'allow') assert.equal(allowing?.rule, e.rule, label)
      else if (e.rule !== null) assert.equal(e.rules.find((s) => s.rule === e.rule)?.outcome, e.reason, label)
      else assert.equal(allowing, undefined, label)
    }
  })

  it('names why each other rule does not fit: path, method, query, header, body, grant, severity', () => {
    const outcomes = (c: Case) => Object.fromEntries(explained(c).rules.map((s) => [s.rule, s.outcome]))
    assert.deepEqual(outcomes(cases[1] as Case), { 'list-issues': 'query_not_allowed', 'create-issue': 'method', labels: 'path', repo: 'path', 'delete-repo': 'path' })
    assert.deepEqual(outcomes(cases[5] as Case), { 'list-issues': 'method', 'create-issue': 'severity_exceeds_grant', labels: 'path', repo: 'path', 'delete-repo': 'path' })
    assert.equal(outcomes(cases[7] as Case)['create-issue'], 'body_not_allowed')
    assert.equal(outcomes(cases[9] as Case)['create-issue'], 'not_in_grant')
    assert.equal(outcomes(cases[11] as Case).labels, 'header_not_allowed')
    assert.equal(outcomes(cases[13] as Case).repo, 'body_unexpected')
    const steps = explained(cases[4] as Case).rules
    assert.match(steps.find((s) => s.rule === 'list-issues')?.detail ?? '', /its methods GET do not include "PATCH"/)
  })

  it('states severity needed and granted, report mode, the code answered, and what it does not evaluate', () => {
    const tooLow = explained(cases[15] as Case)
    assert.deepEqual([tooLow.severity, tooLow.code, tooLow.report], [{ needed: 'admin', granted: 'read' }, 'policy_denied', false])
    assert.ok(!tooLow.not_evaluated.some((n) => n.startsWith('budgets')), 'a refused request spends no budget')
    const reported = explained(cases[17] as Case)
    assert.deepEqual([reported.decision, reported.reason, reported.rule, reported.report, reported.code], ['deny', 'not_in_grant', 'repo', true, null])
    const allowed = explained(cases[0] as Case)
    assert.deepEqual([allowed.via, allowed.code, allowed.path, allowed.severity], ['gateway_path', null, '/repos/o/r/issues', { needed: 'read', granted: 'read' }])
    assert.ok(allowed.not_evaluated.some((n) => n.includes('budgets gh-rate apply')), allowed.not_evaluated.join('\n'))
    assert.ok(allowed.not_evaluated.some((n) => n.includes('egress address check')))
    const forward = explain(config.policy, { grants: [parseGrant('gh:read')], method: 'GET', url: 'https://api.github.com/api/v3/repos/o/r/issues', headers: {}, body: undefined })
    assert.deepEqual([forward.via, forward.decision, forward.path], ['forward_origin', 'allow', '/repos/o/r/issues'])
    const unexpected = explained(cases[13] as Case)
    assert.equal(unexpected.code, 'body_unexpected')
  })
})

describe('explain at an MCP endpoint: each JSON-RPC message, decided by mcp/decide.ts', () => {
  const mcp = parseConfig(`version: 1
connectors:
  tracker:
    upstream: https://mcp.example
    rules:
      - { id: health, methods: [GET], path: /health, severity: read }
    mcp:
      endpoint: /mcp
      trust_annotations: true
      tools:
        - { id: list-issues, name: list_issues, severity: read }
        - { id: delete, name: "delete_*", severity: admin }
`, '/tmp/explain-mcp.yaml')
  const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
  const ask = (method: string, url: string, body?: unknown, headers: Record<string, string> = json) =>
    explain(mcp.policy, { grants: [parseGrant('tracker:write')], method, url, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
  const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } })

  it('decides tools/call by tool, a batch whole, the transport\'s GET, and refuses what is not MCP\'s', () => {
    const allowed = ask('POST', '/tracker/mcp', call(1, 'list_issues'))
    assert.deepEqual([allowed.decision, allowed.rule, allowed.code, allowed.rules], ['allow', 'list-issues', null, []])
    assert.deepEqual(allowed.mcp?.map((m) => [m.method, m.item, m.decision]), [['tools/call', 'list_issues', 'allow']])
    const batch = ask('POST', '/tracker/mcp', [call(1, 'list_issues'), call(2, 'delete_repo')])
    assert.deepEqual([batch.decision, batch.reason, batch.rule, batch.code], ['deny', 'severity_exceeds_grant', 'delete', 'policy_denied'])
    assert.deepEqual(batch.mcp?.map((m) => m.reason), ['batch_refused', 'severity_exceeds_grant'])
    assert.equal(ask('POST', '/tracker/mcp', call(1, 'mystery')).reason, 'tool_unknown')
    assert.ok(ask('POST', '/tracker/mcp', call(1, 'mystery')).not_evaluated.some((n) => n.startsWith('MCP annotations')))
    assert.deepEqual([ask('GET', '/tracker/mcp').decision, ask('GET', '/tracker/mcp').rule], ['allow', 'mcp.stream'])
    assert.equal(ask('PUT', '/tracker/mcp').reason, 'method_not_allowed')
    assert.equal(ask('POST', '/tracker/mcp?x=1', call(1, 'list_issues')).reason, 'query_not_allowed')
    assert.deepEqual([ask('POST', '/tracker/mcp', '{"jsonrpc":').code, ask('POST', '/tracker/mcp', { id: 1 }).code], ['mcp_request_invalid', 'mcp_request_invalid'])
    // Beside the endpoint, the HTTP rules decide as usual.
    const health = ask('GET', '/tracker/health')
    assert.deepEqual([health.decision, health.rule, health.mcp], ['allow', 'health', undefined])
  })
})

describe('explain: the egress address check of an IP-literal upstream, judged without dialing', () => {
  const egress = parseConfig(`version: 1
connectors:
  local:
    upstream: http://127.0.0.1:9
    allow_insecure: true
    rules: [{ id: all, methods: [GET], path: "/**", severity: read }]
  allowed:
    upstream: http://127.0.0.1:9/allowed
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: all, methods: [GET], path: "/**", severity: read }]
`, '/tmp/explain-egress.yaml')
  const ask = (connector: string) => explain(egress.policy, { grants: [parseGrant(`${connector}:read`)], method: 'GET', url: `/${connector}/x`, headers: {}, body: undefined })

  it('a loopback upstream is refused unless allow_addresses covers it; a name is left to sending', () => {
    const refused = ask('local')
    assert.deepEqual([refused.decision, refused.code, refused.egress?.verdict], ['allow', 'upstream_address_refused', 'refused'])
    assert.match(refused.egress?.detail ?? '', /127\.0\.0\.0\/8/)
    assert.ok(!refused.not_evaluated.some((n) => n.includes('egress address check')))
    const allowed = ask('allowed')
    assert.deepEqual([allowed.code, allowed.egress?.verdict], [null, 'allowed'])
    assert.equal(explained(cases[0] as Case).egress?.verdict, 'resolved_when_sent')
  })
})
