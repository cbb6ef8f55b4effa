import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { readFileSync } from 'node:fs'
import { loadConfig, parseConfig } from './load.ts'
import { OperatorError } from '../errors.ts'
import { normalisePath } from '../policy/path.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixtures = join(root, 'test', 'fixtures', 'config')
const fixture = (name: string): string => join(fixtures, name)

function errorOf(fn: () => unknown): OperatorError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof OperatorError, `expected an OperatorError, got ${String(err)}`)
    return err
  }
  assert.fail('expected the configuration to be refused')
}

describe('loadConfig refuses a broken fixture with file, line and field', () => {
  const broken = [
    ['unknown-field.yaml', 10, 'connectors.github.rules[0].alow_other_query: unknown field (expected one of: id, methods, path, severity, query, allow_other_query, websocket, headers, body, mode, allow_body, approval)'],
    ['bad-severity.yaml', 10, 'connectors.github.rules[0].severity: must be one of read, write, admin'],
    ['http-without-insecure.yaml', 4, 'connectors.internal.upstream: an http:// upstream needs allow_insecure: true (the credential would cross the network in cleartext)'],
    ['duplicate-rule-id.yaml', 10, 'connectors.github.rules[1].id: duplicate rule id read (already used by rules[0])'],
    ['bad-regex.yaml', 11, 'connectors.github.rules[0].query.state.pattern: invalid regular expression "open|(closed": Unterminated group'],
    ['bad-path-pattern.yaml', 8, `connectors.github.rules[0].path: path pattern "/repos/**/issues": '**' is only allowed as the last segment`],
    ['bad-json-schema.yaml', 14, 'connectors.github.rules[0].body.properties.title.type: not a valid JSON Schema: must be one of array, boolean, integer, null, number, object, string'],
    ['yaml-syntax.yaml', 8, 'Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['missing-secret.yaml', 5, 'connectors.github.credential: missing required field secret'],
  ] as const
  for (const [name, line, message] of broken) {
    it(`${name}: line ${line}`, () => {
      const file = fixture(name)
      assert.equal(errorOf(() => loadConfig(file)).message, `${file}:${line}: ${message}`)
    })
  }

  it('reports several errors together, in file order', () => {
    const file = fixture('many-errors.yaml')
    assert.equal(
      errorOf(() => loadConfig(file)).message,
      [
        `${file}:1: version: must be 1`,
        `${file}:5: connectors.GitHub: connector names must match ^[a-z][a-z0-9-]{0,62}$`,
        `${file}:12: connectors.ok.rules[0].methods[0]: must be an upper-case HTTP method such as GET`,
      ].join('\n'),
    )
  })

  it('says when the file does not exist', () => {
    const err = errorOf(() => loadConfig(fixture('nope.yaml')))
    assert.match(err.message, /nope\.yaml: configuration file not found/)
    assert.match(err.hint ?? '', /--config/)
  })
})

/** A one-connector config with `connector` spliced in (indented by 4) from line 4 on. */
function withConnector(connector: string): string {
  const body = connector.trim().split('\n').map((l) => `    ${l}`).join('\n')
  return `version: 1\nconnectors:\n  api:\n${body}\n`
}

describe('parseConfig refuses, located', () => {
  const cases = [
    ['a bad listen address', 'version: 1\nlisten:\n  gateway: localhost\nconnectors: {}\n', ':3: listen.gateway: must be host:port, e.g. 127.0.0.1:8787 (an IPv6 host in brackets: [::1]:8787)'],
    ['a port out of range', 'version: 1\nlisten: { gateway: "127.0.0.1:70000" }\nconnectors: {}\n', ':2: listen.gateway: must be host:port'],
    ['an admin listener on the gateway address', 'version: 1\nlisten:\n  gateway: 127.0.0.1:8787\n  admin: 127.0.0.1:8787\nconnectors: {}\n', ":4: listen.admin: must not be the address of listen.gateway: the admin API needs a listener of its own, out of the sandboxes' reach"],
    ['an admin listener on the forward proxy port of every address', 'version: 1\nlisten:\n  forward: 0.0.0.0:8789\n  admin: 127.0.0.1:8789\nconnectors: {}\n', ':4: listen.admin: must not be the address of listen.forward'],
    ['a missing version', 'connectors: {}\n', ':1: missing required field version'],
    ['an empty file', '', ':1: must be object'],
    ['a duplicate YAML key', 'version: 1\nversion: 1\nconnectors: {}\n', ':2: Map keys must be unique'],
    ['a non-https upstream scheme', withConnector('upstream: ftp://files.example.com'), ':4: connectors.api.upstream: must be an https:// URL'],
    ['an upstream that is not a URL', withConnector('upstream: api.example.com'), ':4: connectors.api.upstream: must be an absolute URL'],
    ['an upstream with a query', withConnector('upstream: https://api.example.com/?x=1'), ':4: connectors.api.upstream: must not contain a query'],
    ['an upstream with user info', withConnector('upstream: https://me:pw@api.example.com'), ':4: connectors.api.upstream: must not contain user info'],
    ['an upstream with dot segments', withConnector('upstream: https://api.example.com/v1/../admin'), ':4: connectors.api.upstream: must not contain dot segments'],
    ['an upstream with an encoded slash', withConnector('upstream: https://api.example.com/v1%2Fadmin'), ':4: connectors.api.upstream: base path /v1%2Fadmin is ambiguous'],
    ['a credential field for another inject kind', withConnector('upstream: https://a.example\ncredential:\n  secret: k\n  inject: bearer\n  username: me'), ':8: connectors.api.credential.username: only applies to inject: basic'],
    ['basic without a username', withConnector('upstream: https://a.example\ncredential:\n  secret: k\n  inject: basic'), ':5: connectors.api.credential: missing required field username (for inject: basic)'],
    ['header without a header name', withConnector('upstream: https://a.example\ncredential: { secret: k, inject: header }'), ':5: connectors.api.credential: missing required field header (for inject: header)'],
    ['a hop-by-hop credential header', withConnector('upstream: https://a.example\ncredential: { secret: k, inject: header, header: Connection }'), ':5: connectors.api.credential.header: Connection cannot carry a credential'],
    ['a Host credential header', withConnector('upstream: https://a.example\ncredential: { secret: k, inject: header, header: host }'), ':5: connectors.api.credential.header: host cannot carry a credential'],
    ['a template without {secret}', withConnector('upstream: https://a.example\ncredential:\n  secret: k\n  inject: header\n  header: x-api-key\n  template: "Token"'), ':9: connectors.api.credential.template: must contain {secret} exactly once'],
    ['a template with {secret} twice', withConnector('upstream: https://a.example\ncredential:\n  secret: k\n  inject: header\n  header: x-api-key\n  template: "{secret}{secret}"'), ':9: connectors.api.credential.template: must contain {secret} exactly once'],
    ['query without a param', withConnector('upstream: https://a.example\ncredential: { secret: k, inject: query }'), ':5: connectors.api.credential: missing required field param (for inject: query)'],
    ['a bad secret name', withConnector('upstream: https://a.example\ncredential: { secret: My_Token, inject: bearer }'), ':5: connectors.api.credential.secret: must be lower-case letters'],
    ['the TRACE method', withConnector('upstream: https://a.example\nrules:\n  - id: t\n    methods: [GET, TRACE]\n    path: /x\n    severity: read'), ':7: connectors.api.rules[0].methods[1]: TRACE is never allowed through keyvalet'],
    ['a pattern that would escape its anchors', withConnector('upstream: https://a.example\nrules:\n  - id: t\n    methods: [GET]\n    path: /x\n    severity: read\n    query:\n      q: { pattern: "a)|(b" }'), ':11: connectors.api.rules[0].query.q.pattern: invalid regular expression "a)|(b"'],
    ['a header constrained twice by case', withConnector('upstream: https://a.example\nrules:\n  - id: t\n    methods: [GET]\n    path: /x\n    severity: read\n    headers:\n      Accept: {}\n      accept: {}'), ':12: connectors.api.rules[0].headers.accept: accept is constrained twice'],
    ['a missing CA file', withConnector('upstream: https://a.example\nca_file: ./missing.pem'), ':5: connectors.api.ca_file: cannot read'],
    ['a CA file that is not PEM', withConnector('upstream: https://a.example\nca_file: ./valid-minimal.yaml'), ':5: connectors.api.ca_file: '],
    ['an MCP rule id an HTTP rule has', withConnector('upstream: https://a.example\nrules:\n  - { id: t, methods: [GET], path: /x, severity: read }\nmcp:\n  tools:\n    - { id: t, name: list, severity: read }'), ':9: connectors.api.mcp.tools[0].id: duplicate rule id t (rule ids are unique within a connector, HTTP and MCP rules together)'],
    ['tools/call under MCP methods', withConnector('upstream: https://a.example\nmcp:\n  methods:\n    tools/call: read'), ':7: connectors.api.mcp.methods["tools/call"]: tools/call is decided by the tools rules, not here'],
    ['an MCP argument schema with a keyword keyvalet does not enforce', withConnector('upstream: https://a.example\nmcp:\n  tools:\n    - id: t\n      name: x\n      severity: read\n      arguments: { type: object, properties: { n: { type: string, maxLenght: 3 } } }'), ':10: connectors.api.mcp.tools[0].arguments.properties.n.maxLenght: keyword "maxLenght" is not enforced by keyvalet'],
    ['an MCP endpoint that is not a path pattern', withConnector('upstream: https://a.example\nmcp: { endpoint: mcp }'), ':5: connectors.api.mcp.endpoint: path pattern "mcp" must start with'],
    ['an unresolved YAML alias', 'version: 1\nconnectors: *nope\n', ': Unresolved alias'],
  ] as const
  for (const [name, text, expected] of cases) {
    it(`${name}`, () => {
      const file = join(fixtures, 'keyvalet.yaml')
      const message = errorOf(() => parseConfig(text, file)).message
      assert.ok(message.startsWith(file + expected), `${message}\n  does not start with\n${file + expected}`)
    })
  }

  it('shows at most 10 errors and counts the rest', () => {
    // Semantic errors: the schema validator itself stops after a few.
    const rules = Array.from({ length: 12 }, (_, i) => `  - { id: r${i}, methods: [GET], path: /a//b, severity: read }`).join('\n')
    const message = errorOf(() => parseConfig(withConnector(`upstream: https://a.example\nrules:\n${rules}`), 'k.yaml')).message
    const lines = message.split('\n')
    assert.equal(lines.length, 11)
    assert.equal(lines[10], '… and 2 more')
  })
})

describe('loadConfig compiles a valid fixture', () => {
  const config = loadConfig(fixture('valid-full.yaml'))
  const github = config.policy.connectors.get('github')

  it('reads listen, data_dir and limits', () => {
    assert.equal(config.file, fixture('valid-full.yaml'))
    assert.deepEqual(config.gateway, { host: '::1', port: 0 })
    assert.equal(config.dataDir, '/var/lib/keyvalet')
    assert.equal(config.databasePath, '/var/lib/keyvalet/keyvalet.db')
    assert.deepEqual(config.limits, { max_body_inspect_bytes: 65536, approval_body_bytes: 1048576, approvals_per_session: 10, upstream_timeout_ms: 5000, request_timeout_ms: 10000, idle_timeout_ms: 300000, anonymous_records_per_source_per_minute: 60, anonymous_records_per_minute: 600, h2_max_concurrent_streams: 100, h2_max_header_list_bytes: 32768, h2_max_session_memory_mb: 10, h2_max_resets_per_minute: 200, h2_max_invalid_frames: 0, h2_max_rejected_streams: 10, shutdown_grace_ms: 10000 })
    assert.deepEqual([...config.policy.connectors.keys()], ['github', 'registry', 'maps', 'open-data'])
  })

  it('compiles upstreams, CA and every credential kind', () => {
    assert.ok(github)
    assert.equal(github.upstream.href, 'https://api.github.com/')
    assert.equal(github.allowInsecure, false)
    assert.equal(github.ca, readFileSync(fixture('upstream-ca.pem'), 'utf8'))
    assert.deepEqual(github.credential, { secret: 'github-token', source: { type: 'static', options: { secret: 'github-token' } }, kind: 'header', options: { name: 'authorization', template: 'token {secret}' } })
    const registry = config.policy.connectors.get('registry')
    assert.equal(registry?.upstream.pathname, '/api/v2', 'the base path loses its trailing slash')
    assert.deepEqual(registry?.credential, { secret: 'registry-password', source: { type: 'static', options: { secret: 'registry-password' } }, kind: 'basic', options: { username: 'robot' } })
    assert.deepEqual(config.policy.connectors.get('maps')?.credential, { secret: 'maps-key', source: { type: 'static', options: { secret: 'maps-key' } }, kind: 'query', options: { name: 'key' } })
    assert.equal(config.policy.connectors.get('open-data')?.allowInsecure, true)
    assert.equal(config.policy.connectors.get('open-data')?.credential, undefined)
  })

  it('compiles rules into domain objects', () => {
    const [read, create] = github?.rules ?? []
    assert.ok(read && create)
    assert.equal(read.id, 'read-issues')
    assert.equal(read.connector, 'github')
    assert.deepEqual([...read.methods], ['GET', 'HEAD'])
    assert.equal(read.severity, 'read')
    assert.deepEqual(read.paths.map((p) => p.source), ['/repos/my-org/my-repo/issues', '/repos/my-org/my-repo/issues/**'])
    for (const path of ['/repos/my-org/my-repo/issues', '/repos/my-org/my-repo/issues/1']) {
      assert.ok(read.paths.some((p) => p.match(normalisePath(path).segments)), path)
    }
    assert.equal(read.allowOtherQuery, false)
    assert.deepEqual(read.query.map((c) => [c.name, c.pattern?.source, c.required]), [
      ['state', '^(?:open|closed|all)$', false],
      ['per_page', '^(?:[0-9]{1,3})$', true],
    ])
    assert.deepEqual(read.headers.map((c) => [c.name, c.pattern?.source]), [['accept', '^(?:application\\/vnd\\.github\\+json)$']])
    assert.equal(read.body, undefined)
    assert.equal(create.allowOtherQuery, true)
    assert.deepEqual(create.query, [])
  })

  it('compiles a body schema whose check names the first failure', () => {
    const body = github?.rules[1]?.body
    assert.ok(body)
    assert.equal(body.check({ title: 'short' }), undefined)
    assert.equal(body.check({}), '/ must have required properties title')
    assert.equal(body.check({ title: 'far too long a title' }), '/title must not have more than 10 characters')
    assert.equal(body.check('text'), '/ must be object')
  })

  it('warns about dangerous but legal configuration, with lines', () => {
    assert.deepEqual(
      config.warnings.map((w) => [w.line, w.path, w.message.split(':')[0]]),
      [
        [41, 'connectors.github.rules[2].path', '/repos/'],
        [51, 'connectors.registry.rules[0].methods', 'rule push is admin and allows PUT with any body'],
        [52, 'connectors.registry.rules[0].path', '/blobs/* allows any value in segment 2'],
        [54, 'connectors.maps', 'has no rules, so it refuses everything'],
        [57, 'connectors.open-data', 'has no credential'],
        [58, 'connectors.open-data.upstream', 'http'],
        [63, 'connectors.open-data.rules[0].path', '/** allows any value in segment 1'],
      ],
    )
  })

  it("notes, apart from the warnings, that a path ending in /** does not match its prefix, unless the rule lists it", () => {
    assert.deepEqual(
      config.notes.map((n) => [n.line, n.path, n.message]),
      [[63, 'connectors.open-data.rules[0].path', 'rule everything: /** matches paths below /, not / itself; to allow it too, write path: [/, /**]']],
    )
    const text = 'version: 1\nconnectors:\n  s3:\n    upstream: https://s3.example\n    rules:\n      - id: reports\n        methods: [GET]\n        path: [/b/x, /b/reports/**]\n        severity: read\n'
    assert.deepEqual(
      parseConfig(text, 'k.yaml').notes.map((n) => [n.line, n.path, n.message]),
      [[8, 'connectors.s3.rules[0].path[1]', 'rule reports: /b/reports/** matches paths below /b/reports/, not /b/reports itself; to allow it too, write path: [/b/reports, /b/x, /b/reports/**]']],
    )
  })

  it('compiles allow_body: off by default, on with a body schema, refused as false beside one; warned about on a write rule without a schema', () => {
    const rules = (extra: string) => `version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    credential: { secret: x-token, inject: bearer }\n    rules:\n${extra}`
    const loaded = parseConfig(rules([
      '      - { id: plain, methods: [GET], path: /a, severity: read }',
      '      - { id: schema, methods: [DELETE], path: /b, severity: write, body: { type: object } }',
      '      - { id: search, methods: [GET], path: /c, severity: read, allow_body: true }',
      '      - { id: unchecked, methods: [DELETE], path: /d, severity: write, allow_body: true }',
    ].join('\n') + '\n'), 'k.yaml')
    assert.deepEqual(loaded.policy.connectors.get('x')?.rules.map((r) => [r.id, r.allowBody]), [['plain', false], ['schema', true], ['search', true], ['unchecked', true]])
    assert.deepEqual(loaded.warnings.map((w) => [w.line, w.message]), [[10, 'rule unchecked is write and allows DELETE with any body: add a body schema to constrain it']])
    const text = rules('      - { id: r, methods: [DELETE], path: /a, severity: write, allow_body: false, body: { type: object } }\n')
    assert.throws(() => parseConfig(text, 'k.yaml'), (err: Error) => err instanceof OperatorError && /k\.yaml:7: connectors\.x\.rules\[0\]\.allow_body: a rule with a body schema takes a body/.test(err.message))
  })

  it('locates an invalid pattern in a list of paths', () => {
    const text = 'version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    rules:\n      - id: r\n        methods: [GET]\n        path:\n          - /a\n          - /a/**/b\n        severity: read\n'
    assert.throws(() => parseConfig(text, 'k.yaml'), (err: Error) => err instanceof OperatorError && /k\.yaml:10: connectors\.x\.rules\[0\]\.path\[1\]: .*only allowed as the last segment/.test(err.message))
  })
})

describe('loadConfig applies defaults', () => {
  it('defaults the listener, data folder and limits, and warns about nothing in a tight config', () => {
    const config = loadConfig(fixture('valid-minimal.yaml'))
    assert.deepEqual(config.gateway, { host: '127.0.0.1', port: 8787 })
    assert.equal(config.dataDir, join(fixtures, '.keyvalet'))
    assert.deepEqual(config.limits, { max_body_inspect_bytes: 1048576, approval_body_bytes: 1048576, approvals_per_session: 10, upstream_timeout_ms: 30000, request_timeout_ms: 20000, idle_timeout_ms: 300000, anonymous_records_per_source_per_minute: 60, anonymous_records_per_minute: 600, h2_max_concurrent_streams: 100, h2_max_header_list_bytes: 32768, h2_max_session_memory_mb: 10, h2_max_resets_per_minute: 200, h2_max_invalid_frames: 0, h2_max_rejected_streams: 10, shutdown_grace_ms: 10000 })
    assert.deepEqual([config.auditReserveBytes, config.auditOpenAfterMs], [16 * 1024 * 1024, 1000])
    assert.deepEqual(config.warnings, [])
    assert.equal(config.auditFsync, false)
  })

  it('turns on fsync of audit commits when asked', () => {
    const text = `${readFileSync(fixture('valid-minimal.yaml'), 'utf8')}\naudit:\n  fsync: true\n`
    assert.equal(parseConfig(text, fixture('valid-minimal.yaml')).auditFsync, true)
  })

  it('leaves where the audit engine runs to the store unless audit.thread says', () => {
    const base = readFileSync(fixture('valid-minimal.yaml'), 'utf8')
    const thread = (block: string): boolean | undefined => parseConfig(`${base}\n${block}`, fixture('valid-minimal.yaml')).auditThread
    assert.deepEqual([thread(''), thread('audit: { thread: auto }'), thread('audit: { thread: on }'), thread('audit: { thread: off }')], [undefined, undefined, true, false])
    assert.throws(() => thread('audit: { thread: yes }'), /thread/)
  })

  it('reads the audit reserve, when a request gets its open record, and the shutdown grace period', () => {
    const text = `${readFileSync(fixture('valid-minimal.yaml'), 'utf8')}\naudit: { reserve_bytes: 1048576, open_after_ms: 250 }\nlimits: { shutdown_grace_ms: 0 }\n`
    const config = parseConfig(text, fixture('valid-minimal.yaml'))
    assert.deepEqual([config.auditReserveBytes, config.auditOpenAfterMs, config.limits.shutdown_grace_ms], [1048576, 250, 0])
    assert.throws(() => parseConfig(text.replace('1048576', '1024'), fixture('valid-minimal.yaml')), /reserve_bytes/)
  })
})

describe('examples/credentials.yaml', () => {
  it('loads every credential kind, with only the expected warning', () => {
    const config = loadConfig(join(root, 'examples', 'credentials.yaml'))
    const kinds = [...config.policy.connectors.values()].map((c) => `${c.name}:${c.credential?.source.type}/${c.credential?.kind}`)
    assert.deepEqual(kinds, [
      'openai:static/bearer', 'anthropic:static/header', 'crm:oauth_user/bearer', 'billing:oauth_client/bearer',
      'github:github_app/bearer', 'github-git:github_app/basic', 's3:static/aws_sigv4',
    ])
    assert.ok(config.policy.connectors.get('billing')?.assertion !== undefined)
    assert.ok(config.policy.connectors.get('openai')?.attribution !== undefined)
    assert.deepEqual(config.warnings.map((w) => w.path), ['connectors.s3.rules[2].methods'])
  })
})

describe('examples/keyvalet.yaml', () => {
  it('loads, with the cleartext demo upstream among its warnings', () => {
    const config = loadConfig(join(root, 'examples', 'keyvalet.yaml'))
    assert.deepEqual(config.gateway, { host: '127.0.0.1', port: 8787 })
    assert.equal(config.dataDir, join(root, '.keyvalet'))
    assert.deepEqual([...config.policy.connectors.keys()], ['demo', 'github', 'github-mcp', 'openai'])
    assert.deepEqual(config.policy.connectors.get('github-mcp')?.mcp?.tools.map((t) => t.id), ['mcp-list-issues', 'mcp-create-issue', 'mcp-delete'])
    assert.equal(config.policy.connectors.get('openai')?.upstream.pathname, '/v1')
    assert.ok(config.warnings.some((w) => w.path === 'connectors.demo.upstream' && /cleartext/.test(w.message)))
    assert.ok(config.warnings.every((w) => w.path.startsWith('connectors.demo.')), 'only the demo connector is flagged')
  })
})

describe('loadConfig refuses keyvalet-internal secrets as credentials', () => {
  it('never lets a connector inject keyvalet.ca (the interception CA key)', () => {
    const text = 'version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    credential: { secret: keyvalet.ca, inject: bearer }\n'
    assert.throws(() => parseConfig(text, 'k.yaml'), (err: Error) => err instanceof OperatorError && /k\.yaml:5.*reserved/s.test(err.message))
  })

  it("never lets a connector inject a user's OAuth token record (oauth.*) as a static secret", () => {
    const text = 'version: 1\nconnectors:\n  x:\n    upstream: https://a.example\n    credential: { secret: oauth.crm.0123abcd, inject: bearer }\n'
    assert.throws(() => parseConfig(text, 'k.yaml'), (err: Error) => err instanceof OperatorError && /k\.yaml:5: connectors\.x\.credential\.secret: secret names starting with oauth\. hold users' OAuth tokens/.test(err.message))
  })
})

describe('loadConfig warns about timeouts that contradict each other', () => {
  const text = (limits: string): string => `version: 1\nlimits: ${limits}\nconnectors:\n  x:\n    upstream: https://a.example\n    credential: { secret: t, inject: bearer }\n    rules: [{ id: r, methods: [GET], path: /a, severity: read }]\n`
  const timeoutWarnings = (limits: string) => parseConfig(text(limits), 'k.yaml').warnings.filter((w) => w.path.startsWith('limits.'))

  it('an idle timeout not longer than the upstream or request timeout: the upstream is cut before it may answer, a slow client unanswered', () => {
    const warnings = timeoutWarnings('{ upstream_timeout_ms: 60000, request_timeout_ms: 20000, idle_timeout_ms: 20000 }')
    assert.deepEqual(warnings.map((w) => [w.line, w.path]), [[2, 'limits.idle_timeout_ms'], [2, 'limits.idle_timeout_ms']])
    assert.match(warnings[0]?.message ?? '', /^20000 ms is not longer than upstream_timeout_ms \(60000 ms\): .*504 idle_timeout.*; make idle_timeout_ms the longer$/)
    assert.match(warnings[1]?.message ?? '', /^20000 ms is not longer than request_timeout_ms \(20000 ms\): .*408.*$/)
  })

  it('the defaults, and an idle timeout longer than both, do not warn', () => {
    assert.deepEqual(timeoutWarnings('{}'), [])
    assert.deepEqual(timeoutWarnings('{ upstream_timeout_ms: 300, idle_timeout_ms: 1000, request_timeout_ms: 500 }'), [])
  })
})

describe('an MCP connector in keyvalet check', () => {
  it('is not said to refuse everything for want of HTTP rules, and is warned about trusting annotations', () => {
    const config = parseConfig(withConnector('upstream: https://mcp.example\ncredential: { secret: k, inject: bearer }\nmcp:\n  trust_annotations: true'), 'k.yaml')
    assert.deepEqual(config.warnings.map((w) => [w.line, w.path, w.message.split(':')[0]]), [[7, 'connectors.api.mcp.trust_annotations', "trusts the MCP server's tool annotations"]])
  })
})
