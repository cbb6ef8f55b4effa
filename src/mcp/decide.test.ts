import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { FieldPath } from '../schema-kit/field-path.ts'
import type { Grant, McpPolicy, Severity } from '../model/policy.ts'
import { compileMcp, MCP_BLOCK } from './config.ts'
import { decideBatch, decideMessage, decideTransport, visible, type McpDecideArgs } from './decide.ts'
import { readMessages, type ClientMessage } from './jsonrpc.ts'
import Value from 'typebox/value'

function policy(raw: Record<string, unknown>): McpPolicy {
  const problems: string[] = []
  const compiled = compileMcp(Value.Default(MCP_BLOCK, structuredClone(raw)) as never, new Set(), 300_000, (f: FieldPath, m: string) => void problems.push(`${f.join('.')}: ${m}`))
  assert.deepEqual(problems, [])
  return compiled
}

const POLICY = policy({
  tools: [
    { id: 'list', name: 'list_issues', severity: 'read' },
    { id: 'create-small', name: 'create_issue', severity: 'write', arguments: { type: 'object', properties: { title: { type: 'string', maxLength: 5 } } } },
    { id: 'create-any', name: 'create_issue', severity: 'admin' },
    { id: 'delete', name: 'delete_*', severity: 'admin' },
  ],
  resources: [{ id: 'docs', uri: 'file:///docs/*', severity: 'read' }],
  prompts: [{ id: 'summary', name: 'summarise', severity: 'read' }],
  methods: { 'logging/setLevel': 'deny', 'sampling/custom': 'write' },
})

const args = (grants: Grant[], over: Partial<McpDecideArgs> = {}): McpDecideArgs => ({ policy: POLICY, connector: 'tracker', grants, annotated: undefined, ...over })
const grant = (maxSeverity: Severity, rules?: string[]): Grant => ({ connector: 'tracker', maxSeverity, rules })
const call = (name: string, a: Record<string, unknown> = {}): ClientMessage => message({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: a } })
const say = (d: ReturnType<typeof decideMessage>): string => `${d.effect}:${d.reason}:${d.rule ?? '-'}`

function message(json: unknown): ClientMessage {
  const read = readMessages(json)
  assert.ok(!('invalid' in read), 'invalid' in read ? read.invalid : '')
  return read.messages[0] as ClientMessage
}

describe('decideMessage: tools', () => {
  it('allows by exact name and by pattern under a covering grant', () => {
    assert.equal(say(decideMessage(args([grant('read')]), call('list_issues'))), 'allow:rule_matched:list')
    assert.equal(say(decideMessage(args([grant('admin')]), call('delete_repository'))), 'allow:rule_matched:delete')
  })
  it('refuses an unknown tool, and one above the grant naming its rule', () => {
    assert.equal(say(decideMessage(args([grant('admin')]), call('drop_table'))), 'deny:tool_unknown:-')
    assert.equal(say(decideMessage(args([grant('write')]), call('delete_repository'))), 'deny:severity_exceeds_grant:delete')
    assert.equal(say(decideMessage(args([{ connector: 'other', maxSeverity: 'admin', rules: undefined }]), call('list_issues'))), 'deny:not_in_grant:list')
  })
  it('tries the rules in order: arguments outside the first rule fall to the next, and the most telling failure is named', () => {
    assert.equal(say(decideMessage(args([grant('write')]), call('create_issue', { title: 'bug' }))), 'allow:rule_matched:create-small')
    assert.equal(say(decideMessage(args([grant('admin')]), call('create_issue', { title: 'a long title' }))), 'allow:rule_matched:create-any')
    assert.equal(say(decideMessage(args([grant('write')]), call('create_issue', { title: 'a long title' }))), 'deny:arguments_not_allowed:create-small')
  })
  it('a grant that lists rules covers only those', () => {
    assert.equal(say(decideMessage(args([grant('admin', ['list'])]), call('list_issues'))), 'allow:rule_matched:list')
    assert.equal(say(decideMessage(args([grant('admin', ['list'])]), call('delete_repository'))), 'deny:not_in_grant:delete')
  })
  it('takes the severity of a tool no rule names from trusted annotations only, and only under a grant listing no rules', () => {
    const trusting = { ...POLICY, trustAnnotations: true }
    const annotated = new Map<string, Severity>([['read_docs', 'read'], ['drop_table', 'admin']])
    assert.equal(say(decideMessage(args([grant('read')], { policy: trusting, annotated }), call('read_docs'))), 'allow:rule_matched:mcp.annotations')
    assert.equal(say(decideMessage(args([grant('write')], { policy: trusting, annotated }), call('drop_table'))), 'deny:severity_exceeds_grant:mcp.annotations')
    assert.equal(say(decideMessage(args([grant('admin', ['list'])], { policy: trusting, annotated }), call('read_docs'))), 'deny:not_in_grant:mcp.annotations')
    assert.equal(say(decideMessage(args([grant('admin')], { policy: trusting, annotated }), call('never_listed'))), 'deny:tool_unknown:-')
    // Not trusted: the annotations count for nothing.
    assert.equal(say(decideMessage(args([grant('admin')], { annotated }), call('read_docs'))), 'deny:tool_unknown:-')
    // A rule naming the tool wins over its annotations.
    assert.equal(say(decideMessage(args([grant('read')], { policy: trusting, annotated: new Map([['delete_x', 'read']]) }), call('delete_x'))), 'deny:severity_exceeds_grant:delete')
  })
})

describe('decideMessage: other methods, resources, prompts', () => {
  const any = args([grant('read', ['list'])])
  it('allows the protocol under any grant on the connector, even one listing rules', () => {
    for (const method of ['initialize', 'ping', 'tools/list']) {
      assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 1, method }))), `allow:rule_matched:mcp.method:${method}`)
    }
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', method: 'notifications/initialized' }))), 'allow:rule_matched:mcp.method:notifications/initialized')
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 7, result: {} }))), 'allow:rule_matched:mcp.response')
    assert.equal(say(decideTransport(any, 'GET')), 'allow:rule_matched:mcp.stream')
    assert.equal(say(decideTransport(args([]), 'DELETE')), 'deny:not_in_grant:mcp.session_end')
  })
  it('refuses a denied or unnamed method, and applies a configured severity', () => {
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 1, method: 'logging/setLevel', params: { level: 'debug' } }))), 'deny:mcp_method_not_allowed:mcp.method:logging/setLevel')
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 1, method: 'completion/complete' }))), 'deny:mcp_method_not_allowed:mcp.method:completion/complete')
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 1, method: 'tools/delete' }))), 'deny:mcp_method_not_allowed:-')
    // A tools/call sent as a notification names no tool for a rule to check: refused.
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'list_issues' } }))), 'deny:mcp_method_not_allowed:-')
    assert.equal(say(decideMessage(any, message({ jsonrpc: '2.0', id: 1, method: 'sampling/custom' }))), 'deny:severity_exceeds_grant:mcp.method:sampling/custom')
  })
  it('decides resources by URI pattern and prompts by name', () => {
    const read = (uri: string) => message({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri } })
    assert.equal(say(decideMessage(args([grant('read')]), read('file:///docs/a.md'))), 'allow:rule_matched:docs')
    assert.equal(say(decideMessage(args([grant('read')]), read('file:///docs/private/a.md'))), 'deny:resource_not_allowed:-')
    assert.equal(say(decideMessage(args([grant('read')]), message({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'summarise' } }))), 'allow:rule_matched:summary')
    assert.equal(say(decideMessage(args([grant('read')]), message({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'other' } }))), 'deny:prompt_unknown:-')
  })
  it('shows in lists what a call could use, arguments aside', () => {
    assert.equal(visible(args([grant('write')]), { kind: 'tool', key: 'create_issue' }), true)
    assert.equal(visible(args([grant('write')]), { kind: 'tool', key: 'delete_repository' }), false)
    assert.equal(visible(args([grant('read')]), { kind: 'resource', key: 'file:///docs/x' }), true)
  })
})

describe('decideBatch and readMessages', () => {
  it('refuses a batch whole, each other message as batch_refused', () => {
    const read = readMessages([{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_issues' } }, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'drop_table' } }])
    assert.ok(!('invalid' in read))
    assert.deepEqual(decideBatch(args([grant('admin')]), read.messages).map(say), ['deny:batch_refused:list', 'deny:tool_unknown:-'])
  })
  it('refuses what is not JSON-RPC, or a call whose params do not name its tool', () => {
    assert.deepEqual(readMessages([]), { invalid: 'an empty batch', code: -32600 })
    assert.deepEqual(readMessages({ jsonrpc: '1.0', id: 1, method: 'ping' }), { invalid: 'not a JSON-RPC 2.0 message', code: -32600 })
    assert.deepEqual(readMessages({ jsonrpc: '2.0', id: null, method: 'ping' }), { invalid: 'a request id must be a string or a number', code: -32600 })
    assert.deepEqual(readMessages({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 3 } }), { invalid: 'tools/call needs params.name, a string', code: -32602 })
    assert.deepEqual(readMessages({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: [1] } }), { invalid: 'tools/call: params.arguments must be an object', code: -32602 })
  })
})
