import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { connect } from 'node:net'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { getGlobalDispatcher } from 'undici'
import { mintTaskKey } from '../../src/sessions/task-key.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_realSecretValue0123456789abcdefXYZ'

function config(upstream: Upstream): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  github:
    upstream: ${upstream.url}/api
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
      - { id: create-issue, methods: [POST], path: /repos/acme/app/issues, severity: write,
          body: { type: object, required: [title], properties: { title: { type: string, maxLength: 100 } }, additionalProperties: false } }
      - { id: delete-repo, methods: [DELETE], path: /repos/acme/app, severity: admin }
      - { id: search-code, methods: [GET], path: /search/code, severity: read, allow_body: true }
  other:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: other-token, inject: header, header: x-api-key }
    rules:
      - { id: any, methods: [GET], path: /things/**, severity: read }
`
}

describe('gateway end to end', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = await startUpstream()
    kv = await startKeyvalet(config(upstream))
    await kv.setSecret('github-token', SECRET)
    await kv.setSecret('other-token', 'other-secret-value-42')
    key = (await kv.mintKey(['github:write'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  async function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    const seenBefore = upstream.received.length
    const auditBefore = (await kv.audit()).length
    // dispatcher.request sends the path exactly as given (a URL would resolve '..' client-side).
    const res = await getGlobalDispatcher().request({ origin: kv.url, path, method: (opts.method ?? 'GET') as 'GET', headers: opts.headers ?? { authorization: `Bearer ${key}` }, body: opts.body ?? null })
    const text = await res.body.text()
    const records = await kv.audit()
    assert.equal(records.length, auditBefore + 1, 'exactly one audit record per request, written before the response ended')
    const record = records.at(-1)
    assert.ok(record)
    return { status: res.statusCode, headers: res.headers, text, json: safeJson(text), upstream: upstream.received.slice(seenBefore), record }
  }

  it('attaches the real credential to an allowed request and audits it', async () => {
    const r = await send('/github/repos/acme/app/issues/7?state=open', { headers: { authorization: `Bearer ${key}`, accept: 'application/json' } })
    assert.equal(r.status, 200)
    assert.equal(r.upstream.length, 1)
    const seen = r.upstream[0]
    assert.ok(seen)
    assert.equal(seen.url, '/api/repos/acme/app/issues/7?state=open')
    assert.equal(seen.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(seen.headers.host, `127.0.0.1:${upstream.port}`)
    assert.ok(!JSON.stringify(seen.headers).includes(key), 'the task key never reaches the upstream')
    assert.ok(!r.text.includes(SECRET), 'the echoed secret is redacted on the way back')
    assert.ok(r.text.includes('*'.repeat(SECRET.length)))
    assert.equal(r.json?.method, 'GET')
    assert.equal(r.record.decision, 'allow')
    assert.equal(r.record.rule, 'read-issues')
    assert.equal(r.record.credential, 'github-token')
    assert.equal(r.record.agent, 'test-agent')
    assert.equal(r.record.user, 'alice')
    assert.equal(r.record.workspace, 'acme')
    assert.equal(r.record.task, 'task-1')
    assert.equal(r.record.path, '/api/repos/acme/app/issues/7')
    assert.deepEqual(r.record.query_keys, ['state'])
    assert.equal(r.record.upstream_status, 200)
    assert.equal(r.record.redactions, 1)
    assert.ok(r.record.bytes_out > 0)
    const line = JSON.stringify(await kv.audit())
    assert.ok(!line.includes(SECRET) && !line.includes(key) && !line.includes('open'), 'no secret, key or query value in the audit log')
  })

  it('forwards a body that matches the rule schema', async () => {
    const r = await send('/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"title":"bug"}' })
    assert.equal(r.status, 200)
    assert.equal(r.upstream[0]?.body.toString(), '{"title":"bug"}')
    assert.equal(r.upstream[0]?.headers['content-length'], '15')
    assert.equal(r.record.rule, 'create-issue')
  })

  const refusals: [string, () => Parameters<typeof send>, number, string, string][] = [
    ['no task key', () => ['/github/repos/acme/app/issues/1', { headers: {} }], 401, 'task_key_missing', 'task_key_missing'],
    ['a malformed task key', () => ['/github/repos/acme/app/issues/1', { headers: { authorization: 'Bearer kvt_nope' } }], 401, 'task_key_malformed', 'task_key_malformed'],
    ['an unknown task key', () => ['/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${mintTaskKey().key}` } }], 401, 'task_key_invalid', 'task_key_invalid'],
    ['a path outside every rule', () => ['/github/repos/acme/other/issues/1', {}], 403, 'policy_denied', 'no_rule_for_path'],
    ['a method the rule does not list', () => ['/github/repos/acme/app/issues/1', { method: 'PUT', body: '{}' }], 403, 'policy_denied', 'method_not_allowed'],
    ['a severity above the grant', () => ['/github/repos/acme/app', { method: 'DELETE' }], 403, 'policy_denied', 'severity_exceeds_grant'],
    ['a connector outside the grant', () => ['/other/things/1', {}], 403, 'policy_denied', 'not_in_grant'],
    ['a body that does not match the schema', () => ['/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"title":"x","labels":["pwn"]}' }], 403, 'policy_denied', 'body_not_allowed'],
    ['a body that is not JSON', () => ['/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'text/plain' }, body: 'title=x' }], 403, 'policy_denied', 'body_not_allowed'],
    ['a body with a duplicate key (parser differential)', () => ['/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"title":"ok","title":"also fine"}' }], 403, 'policy_denied', 'body_not_allowed'],
    ['an unknown connector', () => ['/nope/x', {}], 404, 'connector_unknown', 'connector_unknown'],
    ['a dot-dot path', () => ['/github/repos/acme/app/issues/../../other', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['an encoded slash', () => ['/github/repos/acme%2fapp/issues/1', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['a double-encoded dot', () => ['/github/repos/acme/app/issues/%252e%252e', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['a matrix parameter', () => ['/github/repos/acme/app/issues/1;x=1', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['an empty segment', () => ['/github/repos//acme/app/issues/1', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['a backslash', () => ['/github/repos/acme/app/issues/1%5c..', {}], 400, 'path_ambiguous', 'path_ambiguous'],
    ['the task key in the query', () => [`/github/repos/acme/app/issues/1?leak=${key}`, {}], 400, 'task_key_misplaced', 'task_key_misplaced'],
    ['the task key in another header', () => ['/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${key}`, 'x-note': `k=${key}` } }], 400, 'task_key_misplaced', 'task_key_misplaced'],
  ]
  for (const [what, args, status, code, reason] of refusals) {
    it(`refuses ${what} without reaching the upstream`, async () => {
      const r = await send(...args())
      assert.equal(r.status, status)
      assert.equal(r.headers['x-keyvalet-error'], code)
      assert.equal(r.json?.error?.code, code)
      assert.equal(typeof r.json?.error?.message, 'string')
      assert.ok(!r.text.includes('at ') || !r.text.includes('.ts:'), 'no stack trace')
      assert.equal(r.upstream.length, 0, 'nothing reached the upstream')
      assert.equal(r.record.decision, 'deny')
      assert.equal(r.record.reason, reason)
      assert.equal(r.record.error, code)
      assert.equal(r.record.status, status)
    })
  }

  // Each climbs out of issues/** on an upstream that trims, folds or strips what follows the dots.
  const dotLike: [string, string][] = [
    ['..%20', 'dot_like_segment'], ['...', 'dot_like_segment'], ['..%C2%A0', 'dot_like_segment'], ['..::$INDEX_ALLOCATION', 'dot_like_segment'],
    ['%EF%BC%8E%EF%BC%8E', 'dot_like_segment'], ['%E2%80%A5', 'dot_like_segment'], ['..%E2%80%8B', 'dot_like_segment'], ['%EF%BB%BF..', 'dot_like_segment'],
    ['x%EF%BC%8F..', 'lookalike_character'], ['7.', 'trailing_dot'], ['7%20', 'surrounding_whitespace'], ['%37', 'needless_escape'],
  ]
  for (const [segment, why] of dotLike) {
    it(`refuses the segment ${segment} (${why}) without reaching the upstream`, async () => {
      const r = await send(`/github/repos/acme/app/issues/${segment}/${segment}/${segment}/other/issues/1`)
      assert.equal(r.status, 400)
      assert.equal(r.json?.error?.code, 'path_ambiguous')
      assert.equal(r.upstream.length, 0, 'nothing reached the upstream')
      assert.deepEqual([r.record.decision, r.record.reason, r.record.detail?.why], ['deny', 'path_ambiguous', why])
    })
  }

  it('refuses a connector name spelled with escapes or a byte-order mark, which once routed by its decoded name and forwarded another path', async () => {
    for (const [spelling, why] of [['%67ithub', 'needless_escape'], ['%EF%BB%BFgithub', 'surrounding_whitespace']]) {
      const r = await send(`/${spelling}/repos/acme/app/issues/1`)
      assert.deepEqual([r.status, r.json?.error?.code, r.record.detail?.why, r.upstream.length], [400, 'path_ambiguous', why, 0])
    }
  })

  it('a rule on issues/** does not allow issues itself: GET of the prefix is refused', async () => {
    const r = await send('/github/repos/acme/app/issues')
    assert.equal(r.status, 403)
    assert.equal(r.upstream.length, 0)
    assert.deepEqual([r.record.decision, r.record.reason], ['deny', 'method_not_allowed'], 'only create-issue (POST) is on this path')
    const below = await send('/github/repos/acme/app/issues/')
    assert.deepEqual([below.status, below.record.reason, below.upstream.length], [403, 'no_rule_for_path', 0], 'nor the prefix with a trailing slash')
  })

  it('says which severity a refused request needed, and what the grant allows', async () => {
    const r = await send('/github/repos/acme/app', { method: 'DELETE' })
    assert.equal(r.record.reason, 'severity_exceeds_grant')
    assert.equal(r.json?.error?.message, 'This request needs admin; the task was granted write on connector github (severity_exceeds_grant).')
    const narrowed = (await kv.mintKey(['github:read', 'github:admin:create-issue'])).key
    const other = await send('/github/repos/acme/app', { method: 'DELETE', headers: { authorization: `Bearer ${narrowed}` } })
    assert.equal(other.json?.error?.message, 'This request needs admin; the task was granted read on connector github (severity_exceeds_grant).', 'an admin grant for another rule is not what it was granted for this one')
  })

  it('says a body that a rule must check is not valid JSON, and why', async () => {
    const cases: [Record<string, string>, string, string][] = [
      [{ 'content-type': 'application/json' }, '{"title":', 'body is not valid JSON'],
      [{ 'content-type': 'text/plain' }, 'title=x', 'content-type is not JSON'],
      [{ 'content-type': 'application/json' }, '{"title":"a","title":"b"}', 'body has a duplicate object key'],
      [{ 'content-type': 'application/json' }, '\ufeff{"title":"a"}', 'body starts with a byte-order mark'],
    ]
    for (const [headers, body, why] of cases) {
      const r = await send('/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, ...headers }, body })
      assert.equal(r.status, 403)
      assert.equal(r.json?.error?.message, `The request body is not valid JSON (${why}); the matching rule checks it against a schema (body_not_allowed).`)
      assert.deepEqual([r.record.reason, r.upstream.length], ['body_not_allowed', 0])
    }
    const shape = await send('/github/repos/acme/app/issues', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"title":1}' })
    assert.match(shape.json?.error?.message, /^The request body does not have the shape the matching rule requires/, 'valid JSON of the wrong shape keeps its message')
  })

  it('refuses a GET or DELETE carrying a body before anything is forwarded, unless its rule allows one', async () => {
    const form = { authorization: `Bearer ${key}`, 'content-type': 'application/x-www-form-urlencoded' }
    for (const [method, path] of [['GET', '/github/repos/acme/app/issues/1'], ['DELETE', '/github/repos/acme/app']]) {
      const r = await send(path as string, { method, headers: form, body: '_method=DELETE&action=close' })
      assert.equal(r.status, 400, `${method}`)
      assert.equal(r.headers['x-keyvalet-error'], 'body_unexpected')
      assert.match(r.json?.error?.message, new RegExp(`^${method} takes no request body under the matching rule`))
      assert.equal(r.upstream.length, 0, 'nothing reached the upstream')
      assert.deepEqual([r.record.decision, r.record.reason, r.record.error, r.record.status], ['deny', 'body_unexpected', 'body_unexpected', 400])
      assert.match(String(r.record.detail?.why), /takes no body/)
    }
    const allowed = await send('/github/search/code', { headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"q":"x"}' })
    assert.equal(allowed.status, 200, 'a rule with allow_body takes one')
    assert.equal(allowed.upstream[0]?.body.toString(), '{"q":"x"}')
    const empty = await send('/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${key}`, 'content-length': '0' } })
    assert.equal(empty.status, 200, 'Content-Length: 0 is no body')
  })

  it('refuses an Expect other than 100-continue with a stable code and an audit record (not an unrecorded 417)', async () => {
    const seen = upstream.received.length
    const audited = (await kv.audit()).length
    const answer = await rawRequest(`GET /github/repos/acme/app/issues/1 HTTP/1.1\r\nHost: keyvalet\r\nAuthorization: Bearer ${key}\r\nExpect: something-else\r\nConnection: close\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 400 /)
    assert.match(answer, /"code":"header_invalid"/)
    assert.equal(upstream.received.length, seen)
    const records = (await kv.audit()).slice(audited)
    assert.deepEqual(records.map((r) => [r.decision, r.reason, r.detail?.header, r.session !== null]), [['deny', 'header_invalid', 'expect', false]])
  })

  it('writes one audit record for a request the parser refuses, however many pieces of it are still arriving', async () => {
    const audited = (await kv.audit()).length
    const body = '{"k":'.repeat(40_000)
    const answer = await rawRequest(`get /github/repos/acme/app HTTP/1.1\r\nHost: keyvalet\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
    assert.match(answer, /^HTTP\/1\.1 400 /)
    const records = (await kv.audit()).slice(audited)
    assert.deepEqual(records.map((r) => r.error), ['request_malformed'])
  })

  /** One request written byte for byte on its own connection; the answer until keyvalet closes. */
  function rawRequest(text: string): Promise<string> {
    const { port } = new URL(kv.url)
    return new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(text))
      let data = ''
      socket.on('data', (c) => { data += c.toString() })
      socket.on('end', () => resolve(data))
      socket.on('error', reject)
    })
  }

  it('refuses a GET with Transfer-Encoding, even an empty chunked body', async () => {
    const seen = upstream.received.length
    const audited = (await kv.audit()).length
    const answer = await rawRequest(`GET /github/repos/acme/app/issues/1 HTTP/1.1\r\nHost: keyvalet\r\nAuthorization: Bearer ${key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 400 /)
    assert.match(answer, /body_unexpected/)
    assert.equal(upstream.received.length, seen)
    const records = (await kv.audit()).slice(audited)
    assert.deepEqual(records.map((r) => [r.reason, r.error]), [['body_unexpected', 'body_unexpected']])
  })

  it('refuses an expired key, then a revoked one', async () => {
    const short = await kv.mintKey(['github:read'], { ttlMs: 60_000 })
    assert.equal((await send('/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${short.key}` } })).status, 200)
    kv.now += 61_000
    const expired = await send('/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${short.key}` } })
    kv.now -= 61_000
    assert.equal(expired.status, 401)
    assert.equal(expired.record.reason, 'task_key_expired')
    assert.equal(expired.upstream.length, 0)
    const other = await kv.mintKey(['github:read'])
    await kv.runtime.sessions.revoke(other.session)
    const revoked = await send('/github/repos/acme/app/issues/1', { headers: { authorization: `Bearer ${other.key}` } })
    assert.equal(revoked.status, 401)
    assert.equal(revoked.json?.error?.code, 'task_key_revoked')
    assert.equal(revoked.record.session, other.session)
    assert.equal(revoked.upstream.length, 0)
  })

  it('never forwards the sandbox own credential, hop-by-hop or override headers (curl)', async () => {
    const run = promisify(execFile)
    const otherKey = (await kv.mintKey(['other:read'])).key
    const before = upstream.received.length
    const headers = [
      `Authorization: Bearer ${otherKey}`, 'X-Api-Key: sandbox-supplied', 'Connection: keep-alive, X-Private', 'X-Private: 1',
      'X-HTTP-Method-Override: DELETE', 'X-Original-URL: /admin', 'X-Forwarded-For: 10.0.0.1', 'TE: trailers', 'Proxy-Authorization: Basic eDp5',
    ]
    const { stdout: out } = await run('curl', ['--max-time', '10', '-s', '-o', '/dev/null', '-w', '%{http_code}', ...headers.flatMap((h) => ['-H', h]), `${kv.url}/other/things/1`], { encoding: 'utf8' })
    assert.equal(out, '200')
    assert.equal(upstream.received.length, before + 1)
    const seen = upstream.received.at(-1)?.headers ?? {}
    assert.equal(seen['x-api-key'], 'other-secret-value-42')
    for (const name of ['authorization', 'x-private', 'x-http-method-override', 'x-original-url', 'x-forwarded-for', 'te', 'proxy-authorization']) {
      assert.equal(seen[name], undefined, `${name} must not reach the upstream`)
    }
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.credential, 'other-token')
    assert.equal(record?.decision, 'allow')
  })
})

function safeJson(text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

describe('request bodies carrying a task key or placeholder', () => {
  it('refuses a body with the task key in it, without completing the upstream request', async () => {
    const received: string[] = []
    const upstream = await startUpstream({ handler: (_req, res, r) => { received.push(r.body.toString()); res.end('ok') } })
    const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  notes:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: notes-token, inject: bearer }
    placeholder: notes-placeholder-0000
    rules: [{ id: post, methods: [POST], path: /notes, severity: write }]
`)
    try {
      await kv.setSecret('notes-token', 'notes-secret-1234567')
      const { key } = await kv.mintKey(['notes:write'])
      for (const leak of [`here is my key: ${key}`, 'and the placeholder notes-placeholder-0000 too']) {
        const res = await getGlobalDispatcher().request({ origin: kv.url, path: '/notes/notes', method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'text/plain' }, body: leak })
        const text = await res.body.text()
        assert.equal(res.statusCode, 400, text)
        assert.ok(['task_key_misplaced', 'placeholder_misplaced'].includes(String(res.headers['x-keyvalet-error'])))
        const record = (await kv.audit()).at(-1)
        assert.equal((record?.detail as { where?: string }).where, 'body')
      }
      assert.deepEqual(received.filter((b) => b.includes('kvt_') || b.includes('placeholder')), [], 'no complete request carried them')
    } finally {
      await kv.close()
      await upstream.close()
    }
  })
})
