import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import { cli } from '../helpers/cli.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const ISSUE_SCHEMA = '{ type: object, required: [title], properties: { title: { type: string, maxLength: 20 } } }'
const rules = (upstream: Upstream, listIssues: string, extra = '', issueSchema = ISSUE_SCHEMA) => `version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  gh:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules:
${extra}      - { id: list-issues, methods: [GET], path: "/repos/:o/:r/issues", severity: ${listIssues} }
      - { id: labels, methods: [PUT], path: "/repos/:o/:r/labels", severity: write, headers: { x-reason: { pattern: "[a-z]+" }, x-api-token: { required: false } } }
      - { id: create-issue, methods: [POST], path: "/repos/:o/:r/issues", severity: write, body: ${issueSchema} }
      - { id: delete-repo, methods: [DELETE], path: "/repos/:o/:r", severity: admin }
      - { id: search, methods: [GET], path: "/search", severity: read, query: { q: { pattern: "[a-z]+" } } }
`

/** The kinds of request sent, in turn: who sends it, what, and what the recorded config decided. */
const KINDS = [
  { key: 'read', method: 'GET', path: (i: number) => `/repos/acme/app${i % 7}/issues`, allowed: 'list-issues' },
  { key: 'read', method: 'GET', path: (i: number) => `/repos/acme/app${i % 5}/issues?state=open`, allowed: 'list-issues' },
  { key: 'write', method: 'GET', path: () => '/repos/acme/app/issues', allowed: 'list-issues' },
  { key: 'read', method: 'GET', path: (i: number) => `/repos/acme/app${i % 3}/pulls`, allowed: null },
  { key: 'write', method: 'PUT', path: () => '/repos/acme/app/labels', headers: { 'x-reason': 'triage', 'x-api-token': 'tok-secret-123' }, allowed: 'labels' },
  { key: 'write', method: 'PUT', path: () => '/repos/acme/app/labels', headers: { 'x-reason': 'Not OK!' }, allowed: null },
  { key: 'write', method: 'DELETE', path: () => '/repos/acme/app', allowed: null },
  { key: 'write', method: 'POST', path: () => '/repos/acme/app/issues', body: (i: number) => i % 2 === 0 ? '{"title":"bug"}' : '{"title":"a longer title","note":"n"}', allowed: 'create-issue' },
  { key: 'read', method: 'GET', path: () => '/search?q=bugs', allowed: 'search' },
  { key: 'read', method: 'POST', path: () => '/repos/acme/app/issues', body: () => '{"title":"bug"}', allowed: null },
  { key: 'read', method: 'GET', path: () => '/repos/acme/app/pulls', headers: Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`x-h-${i}`, 'v'])), allowed: null },
] as const
const ROUNDS = 250
const UNAUTHENTICATED = 20
const CONCURRENCY = 16

type Report = {
  records: number; replayed: number; unchanged: number; not_decided_by_policy: number
  changes: Record<'allowed_to_denied' | 'denied_to_allowed' | 'different_rule', { count: number; examples: { method: string; path: string; before: { rule: string | null }; after: { decision: string; reason: string; rule: string | null } }[] }>
  not_replayable: { count: number; reasons: Record<string, number>; why: Record<string, string> }
}

describe('keyvalet replay: the recorded requests decided again under a new configuration', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let started: string
  const sent: { kind: number; round: number; status: number }[] = []

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(rules(upstream, 'read'))
    const keys = { read: (await kv.mintKey(['gh:read'])).key, write: (await kv.mintKey(['gh:write'])).key }
    started = new Date().toISOString()
    const jobs: (() => Promise<void>)[] = []
    for (let round = 0; round < ROUNDS; round++) {
      KINDS.forEach((k, kind) => jobs.push(async () => {
        const headers: Record<string, string> = { authorization: `Bearer ${keys[k.key]}`, ...('headers' in k ? k.headers : {}), ...('body' in k ? { 'content-type': 'application/json' } : {}) }
        const res = await request(`${kv.url}/gh${k.path(round)}`, { method: k.method, headers, body: 'body' in k ? k.body(round) : undefined, dispatcher })
        await res.body.text()
        sent.push({ kind, round, status: res.statusCode })
      }))
    }
    for (let i = 0; i < UNAUTHENTICATED; i++) {
      jobs.push(async () => {
        const res = await request(`${kv.url}/gh/repos/acme/app/issues`, { dispatcher })
        await res.body.text()
      })
    }
    const dispatcher = new Agent({ connections: CONCURRENCY })
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < jobs.length) await (jobs[next++] as () => Promise<void>)()
    }))
    await dispatcher.close()
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
  })

  const count = (kinds: readonly number[]) => sent.filter((s) => kinds.includes(s.kind)).length
  const replay = async (configText: string, extra: string[] = []) => {
    const file = join(kv.dir, `new-${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(file, configText)
    const out = await cli(['replay', '--config', file, '--json', ...extra], { env: { KEYVALET_MASTER_KEY: kv.masterKey }, timeoutMs: 60_000 })
    assert.equal(out.code, 0, out.stderr)
    return JSON.parse(out.stdout) as Report
  }

  it('the requests were decided as sent (upstream, sandbox, audit), and each record carries what a decision needs', async () => {
    const allowedKinds = KINDS.flatMap((k, i) => k.allowed === null ? [] : [i])
    assert.equal(sent.length, ROUNDS * KINDS.length)
    for (const s of sent) assert.equal(s.status === 200, (KINDS[s.kind] as { allowed: string | null }).allowed !== null, `kind ${s.kind} answered ${s.status}`)
    assert.equal(upstream.received.length, count(allowedKinds), 'the upstream received exactly the allowed requests')
    const records = (await kv.audit()).filter((r) => r.mode === 'gateway')
    assert.equal(records.length, ROUNDS * KINDS.length + UNAUTHENTICATED)
    const label = records.find((r) => r.rule === 'labels' && r.decision === 'allow')
    assert.deepEqual(label?.decided_on?.headers, { 'x-reason': 'triage', 'x-api-token': null }, 'a secret-bearing header a rule names: present, its value not recorded')
    assert.deepEqual(label?.decided_on?.grants, ['gh:write'])
    assert.deepEqual(label?.decided_on?.segments, ['repos', 'acme', 'app', 'labels'])
    assert.ok(label?.decided_on?.header_names.includes('authorization'))
    const created = records.find((r) => r.rule === 'create-issue' && r.decision === 'allow' && r.decided_on?.body_fields?.['/title']?.value === 'a longer title')
    assert.equal(created?.decided_on?.body_digest, `sha256:${createHash('sha256').update('{"title":"a longer title","note":"n"}').digest('hex')}`)
    assert.equal(created?.decided_on?.carries_body, true)
    assert.deepEqual(created?.decided_on?.body_fields, { '': { type: 'object' }, '/title': { type: 'string', value: 'a longer title' } }, 'what the schema reads, not the note')
    const many = records.filter((r) => r.decided_on?.header_names_cut === true)
    assert.equal(many.length, count([10]), 'a request with 80 headers: its header names are cut short, and the record says so')
    assert.ok(many.every((r) => r.decided_on?.header_names.length === 64))
    const unauthenticated = records.filter((r) => r.decided_on === undefined)
    assert.equal(unauthenticated.length, UNAUTHENTICATED, 'a request the policy never decided has no decided_on')
    const text = JSON.stringify(records)
    assert.doesNotMatch(text, /kvt_|tok-secret-123/, 'no task key and no secret-bearing header value in the audit')
  })

  it('a config that tightens one rule (list-issues needs write): exactly the read grant\'s issue listings go from allowed to denied', async () => {
    const report = await replay(rules(upstream, 'write'))
    const expected = count([0, 1])
    assert.equal(report.changes.allowed_to_denied.count, expected)
    assert.equal(report.changes.denied_to_allowed.count, 0)
    assert.equal(report.changes.different_rule.count, 0)
    for (const e of report.changes.allowed_to_denied.examples) {
      assert.deepEqual([e.method, e.before.rule, e.after.decision, e.after.reason, e.after.rule], ['GET', 'list-issues', 'deny', 'severity_exceeds_grant', 'list-issues'])
      assert.match(e.path, /^\/repos\/acme\/app\d\/issues$/)
    }
    assert.equal(report.changes.allowed_to_denied.examples.length, 5)
    // A query value a pattern checks is not in the audit: counted, not guessed.
    assert.deepEqual(report.not_replayable.reasons, { query_value: count([8]) })
    assert.match(report.not_replayable.why.query_value ?? '', /query names only/)
    assert.equal(report.not_decided_by_policy, UNAUTHENTICATED)
    assert.equal(report.records, ROUNDS * KINDS.length + UNAUTHENTICATED)
    assert.equal(report.replayed, ROUNDS * KINDS.length - count([8]))
    assert.equal(report.unchanged, report.replayed - expected)
  })

  it('a body schema tightened on the field it read is replayed from the recorded field; one reading a field never recorded is not replayable', async () => {
    const tighter = await replay(rules(upstream, 'read', '', '{ type: object, required: [title], properties: { title: { type: string, maxLength: 5 } } }'))
    const long = sent.filter((s) => s.kind === 7 && s.round % 2 === 1).length
    assert.equal(tighter.changes.allowed_to_denied.count, long)
    assert.deepEqual(tighter.changes.allowed_to_denied.examples.map((e) => [e.method, e.before.rule, e.after.reason]), Array(5).fill(['POST', 'create-issue', 'body_not_allowed']))
    assert.deepEqual(tighter.not_replayable.reasons, { query_value: count([8]) })
    const wider = await replay(rules(upstream, 'read', '', '{ type: object, required: [title, labels], properties: { title: { type: string } } }'))
    assert.deepEqual(wider.not_replayable.reasons, { body: count([7]), query_value: count([8]) })
    assert.match(wider.not_replayable.why.body ?? '', /reads parts of it the audit did not record/)
    assert.equal(wider.changes.allowed_to_denied.count, 0)
  })

  it('a config that loosens (a rule for pulls, and one before list-issues): the reverse, and a different rule', async () => {
    const extra = '      - { id: pulls, methods: [GET], path: "/repos/:o/:r/pulls", severity: read }\n      - { id: issues-any, methods: [GET], path: "/repos/:o/:r/issues", severity: read }\n'
    const report = await replay(rules(upstream, 'read', extra))
    assert.equal(report.changes.allowed_to_denied.count, 0)
    assert.equal(report.changes.denied_to_allowed.count, count([3, 10]))
    assert.equal(report.changes.different_rule.count, count([0, 1, 2]))
    assert.deepEqual(report.changes.different_rule.examples.map((e) => [e.before.rule, e.after.rule]), Array(5).fill(['list-issues', 'issues-any']))
    assert.deepEqual(report.changes.denied_to_allowed.examples.map((e) => e.after.rule), Array(5).fill('pulls'))
  })

  it('the same config changes nothing; --since and --until bound the records; the text output names what is not replayed', async () => {
    const same = await replay(rules(upstream, 'read'))
    assert.deepEqual([same.changes.allowed_to_denied.count, same.changes.denied_to_allowed.count, same.changes.different_rule.count], [0, 0, 0])
    const none = await replay(rules(upstream, 'write'), ['--until', started])
    assert.equal(none.records, 0)
    const file = join(kv.dir, 'tight.yaml')
    writeFileSync(file, rules(upstream, 'write'))
    const text = await cli(['replay', '--config', file, '--since', '1h'], { env: { KEYVALET_MASTER_KEY: kv.masterKey }, timeoutMs: 60_000 })
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, new RegExp(`allowed -> denied +${count([0, 1])}`))
    assert.match(text.stdout, /#\d+ \S+ GET gh \/repos\/acme\/app\d\/issues: allow list-issues -> deny severity_exceeds_grant \(list-issues\)/)
    assert.match(text.stdout, /query_value: a rule decide reaches checks a query parameter value/)
    assert.match(text.stdout, /Not replayed: budgets and rate limits/)
    const bad = await cli(['replay', '--config', file, '--until', 'soon'], { env: { KEYVALET_MASTER_KEY: kv.masterKey } })
    assert.match(bad.stderr, /--until: not a time or a duration/)
  })
})
