import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import { parseExposition, promtoolCheck, series } from '../helpers/metrics.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startMcpServer, type McpTestServer } from '../helpers/mcp-server.ts'
import { startUpstream } from '../helpers/upstream.ts'
import { allToolNames, lastSeq, MCP_BLOCK, naming, object, recorded, refusalOf, TOOLS } from '../helpers/mcp-client.ts'

const SECRET = 'mcp_realServerToken_0123456789abcdefXYZ'

function config(server: McpTestServer): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  tracker:
    upstream: ${server.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }${MCP_BLOCK}
  trusting:
    upstream: ${server.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }
    mcp:
      endpoint: /mcp
      trust_annotations: true
`
}

/** The official SDK client, through the gateway, with the task key where the bearer token goes. */
async function connectClient(kv: TestKeyvalet, connector: string, key: string): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(`${kv.url}/${connector}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}` } } })
  await client.connect(transport)
  return client
}

describe('MCP through the gateway, with the official SDK as client and server', () => {
  let server: McpTestServer
  let kv: TestKeyvalet
  let client: Client
  let key: string

  const metrics = new KeyvaletMetrics()

  before(async () => {
    server = await startMcpServer({ tools: TOOLS, pageSize: 3 })
    kv = await startKeyvalet(config(server), { metrics })
    await kv.setSecret('tracker-token', SECRET)
    key = (await kv.mintKey(['tracker:write', 'trusting:write'])).key
    client = await connectClient(kv, 'tracker', key)
  })
  after(async () => {
    await client?.close()
    await kv?.close()
    await server?.close()
  })

  it('lists only the tools the grant allows, on every page of a paginated list', async () => {
    assert.deepEqual(await allToolNames(client), ['list_issues', 'create_issue', 'echo_auth', 'slow_count'])
    // The server listed all of them: keyvalet narrowed its answers.
    const lists = server.received.filter((r) => (r.body as { method?: string } | undefined)?.method === 'tools/list')
    assert.equal(lists.length, 3)
  })

  it('an allowed call reaches the server with the real credential, and is audited with tool, digest and rule', async () => {
    const result = await client.callTool({ name: 'list_issues', arguments: { repo: 'acme/app' } })
    assert.deepEqual(result.content, [{ type: 'text', text: 'ran list_issues' }])
    const call = server.calls.at(-1)
    assert.deepEqual(call, { name: 'list_issues', arguments: { repo: 'acme/app' }, authorization: `Bearer ${SECRET}` })
    const record = await recorded(kv, naming('list_issues'))
    assert.equal(record.decision, 'allow')
    assert.equal(record.rule, 'list-issues')
    assert.equal(record.reason, 'rule_matched')
    assert.equal(record.status, 200)
    assert.deepEqual(record.mcp, [{ method: 'tools/call', tool: 'list_issues', arguments_digest: record.mcp?.[0]?.arguments_digest, decision: 'allow', reason: 'rule_matched', rule: 'list-issues' }])
    assert.match(record.mcp?.[0]?.arguments_digest ?? '', /^sha256:[0-9a-f]{64}$/)
    assert.ok(!JSON.stringify(record).includes('acme/app'), 'no argument value in the record')
  })

  it('refuses by name before forwarding: the agent sees the reason as a JSON-RPC error', async () => {
    const callsBefore = server.calls.length
    const over = await refusalOf(client.callTool({ name: 'delete_repository', arguments: { repo: 'acme/app' } }))
    assert.match(over.message, /keyvalet refused tools\/call of tool "delete_repository": .*\(severity_exceeds_grant\)/)
    const unknown = await refusalOf(client.callTool({ name: 'secret_tool', arguments: {} }))
    assert.match(unknown.message, /\(tool_unknown\)/)
    assert.equal(server.calls.length, callsBefore, 'the server ran neither')
    const refused = await recorded(kv, naming('secret_tool'))
    assert.equal(refused.decision, 'deny')
    assert.equal(refused.reason, 'tool_unknown')
    assert.equal(refused.error, 'policy_denied')
    assert.equal(refused.status, 200)
    assert.equal((await recorded(kv, naming('delete_repository'))).rule, 'delete')
  })

  it('refuses by arguments before forwarding', async () => {
    const callsBefore = server.calls.length
    const err = await refusalOf(client.callTool({ name: 'create_issue', arguments: { repo: 'acme/other', title: 'x' } }))
    assert.match(err.message, /rule create-issue requires \(arguments_not_allowed\)/)
    assert.equal(server.calls.length, callsBefore)
    const record = await recorded(kv, naming('create_issue'))
    assert.equal(record.reason, 'arguments_not_allowed')
    assert.equal(record.rule, 'create-issue')
    assert.match(String(record.detail?.why), /^rule create-issue: arguments \/repo /)
    // Within the schema it goes through.
    await client.callTool({ name: 'create_issue', arguments: { repo: 'acme/app', title: 'bug' } })
    assert.equal(server.calls.at(-1)?.name, 'create_issue')
  })

  it('refuses a batch whole when one call in it is refused, answering each request', async () => {
    const receivedBefore = server.received.length
    const seq = await lastSeq(kv)
    const session = server.received.findLast((r) => r.headers['mcp-session-id'] !== undefined)?.headers['mcp-session-id']
    const res = await fetch(`${kv.url}/tracker/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': String(session), 'mcp-protocol-version': '2025-03-26' },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_issues', arguments: {} } },
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'secret_tool', arguments: {} } },
      ]),
    })
    assert.equal(res.status, 200)
    const body = await res.json() as { id: number; error: { code: number; message: string; data: { reason: string } } }[]
    assert.deepEqual(body.map((m) => [m.id, m.error.code, m.error.data.reason]), [[1, -32010, 'batch_refused'], [2, -32010, 'tool_unknown']])
    assert.equal(server.received.slice(receivedBefore).filter((r) => r.method === 'POST').length, 0, 'nothing of the batch reached the server')
    const record = await recorded(kv, naming('secret_tool'), seq)
    assert.equal(record?.reason, 'tool_unknown')
    assert.deepEqual(record?.mcp?.map((m) => [m.tool, m.decision, m.reason]), [['list_issues', 'deny', 'batch_refused'], ['secret_tool', 'deny', 'tool_unknown']])
  })

  it('answers what is not JSON-RPC with JSON-RPC\'s own error, and a refused notification with the HTTP error document, each audited once', async () => {
    const receivedBefore = server.received.length
    const seq = await lastSeq(kv)
    const post = (body: string) => fetch(`${kv.url}/tracker/mcp`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body })
    const broken = await post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_issues","name":"secret_tool"}}')
    assert.equal(broken.status, 400)
    assert.equal(broken.headers.get('x-keyvalet-error'), 'mcp_request_invalid')
    const error = (await broken.json() as { id: null; error: { code: number; message: string } })
    assert.equal(error.id, null)
    assert.equal(error.error.code, -32700)
    assert.match(error.error.message, /duplicate/)
    const notification = await post('{"jsonrpc":"2.0","method":"notifications/whatever"}')
    assert.equal(notification.status, 403)
    assert.equal((await notification.json() as { error: { reason: string } }).error.reason, 'mcp_method_not_allowed')
    assert.equal(server.received.slice(receivedBefore).filter((r) => r.method === 'POST').length, 0, 'neither reached the server')
    const records = (await kv.audit()).filter((r) => r.seq > seq && r.method === 'POST')
    assert.deepEqual(records.map((r) => [r.status, r.error, r.reason]), [[400, 'mcp_request_invalid', 'mcp_request_invalid'], [403, 'policy_denied', 'mcp_method_not_allowed']])
  })

  it('refuses a tool the server adds mid-session, and keeps it out of the list', async () => {
    let changed = false
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed = true })
    await server.addTool({ name: 'drop_table', inputSchema: object() })
    for (let i = 0; i < 100 && !changed; i++) await new Promise((r) => setTimeout(r, 20))
    assert.ok(changed, 'the client heard list_changed through keyvalet')
    assert.ok(!(await allToolNames(client)).includes('drop_table'))
    const callsBefore = server.calls.length
    assert.match((await refusalOf(client.callTool({ name: 'drop_table', arguments: {} }))).message, /\(tool_unknown\)/)
    assert.equal(server.calls.length, callsBefore)
  })

  it('relays the event stream event by event, masking the credential', async () => {
    let progressed!: () => void
    const progress = new Promise<void>((resolve) => { progressed = resolve })
    const call = client.callTool({ name: 'slow_count', arguments: {} }, undefined, { onprogress: () => progressed() })
    // The progress event reaches the client while the server still holds the answer back.
    const first = await Promise.race([progress.then(() => 'progress'), new Promise((r) => setTimeout(() => r('timeout'), 5_000))])
    assert.equal(first, 'progress')
    server.openGate()
    assert.deepEqual((await call).content, [{ type: 'text', text: 'counted' }])
    const echoed = await client.callTool({ name: 'echo_auth', arguments: {} })
    const text = (echoed.content as { text: string }[])[0]?.text ?? ''
    assert.ok(!text.includes(SECRET), 'the credential the server echoed is masked')
    assert.match(text, /^auth: Bearer \*+$/)
    const record = await recorded(kv, naming('echo_auth'))
    assert.equal(record.redactions, 1)
  })

  it('takes a tool without a rule from trusted annotations: read-only allowed, destructive refused and hidden', async () => {
    const trusting = await connectClient(kv, 'trusting', key)
    try {
      const names = await allToolNames(trusting)
      assert.ok(names.includes('read_docs'))
      assert.ok(!names.includes('drop_everything'), 'destructive (MCP presumes it without destructiveHint: false) is admin, above write')
      assert.deepEqual((await trusting.callTool({ name: 'read_docs', arguments: {} })).content, [{ type: 'text', text: 'ran read_docs' }])
      const err = await refusalOf(trusting.callTool({ name: 'drop_everything', arguments: {} }))
      assert.match(err.message, /\(severity_exceeds_grant\)/)
      const record = await recorded(kv, naming('read_docs'))
      assert.equal(record.rule, 'mcp.annotations')
    } finally {
      await trusting.close()
    }
  })

  it('ends the session with DELETE, audited under the protocol rule', async () => {
    const other = await connectClient(kv, 'tracker', key)
    const transport = other.transport as StreamableHTTPClientTransport
    await transport.terminateSession()
    await other.close()
    const deletes = server.received.filter((r) => r.method === 'DELETE')
    assert.equal(deletes.length, 1)
    assert.equal(deletes[0]?.headers.authorization, `Bearer ${SECRET}`)
    const record = await recorded(kv, (r) => r.method === 'DELETE')
    assert.equal(record?.rule, 'mcp.session_end')
    assert.equal(record?.decision, 'allow')
  })
  it('metrics count its messages by method, deciding rule and decision, exactly as the audit recorded them', async () => {
    // tools/call by deciding rule and decision; every message of every method in the total.
    const expected = new Map<string, number>()
    let total = 0
    for (const record of await kv.audit()) {
      if (record.connector !== 'tracker' || record.phase === 'open') continue
      for (const m of record.mcp ?? []) {
        total++
        if (m.method !== 'tools/call') continue
        const key = series('keyvalet_mcp_messages_total', { connector: 'tracker', method: m.method, rule: m.rule ?? 'none', decision: m.decision })
        expected.set(key, (expected.get(key) ?? 0) + 1)
      }
    }
    assert.ok(expected.size >= 3, 'the tests before made calls of several kinds')
    const text = await metrics.expose()
    const samples = parseExposition(text)
    for (const [key, count] of expected) assert.equal(samples.get(key), count, key)
    const counted = [...samples].filter(([k]) => k.startsWith('keyvalet_mcp_messages_total{connector="tracker"')).reduce((a, [, v]) => a + v, 0)
    assert.equal(counted, total)
    assert.ok(!text.includes('secret_tool'), 'a tool name no rule names is not a label')
    const check = promtoolCheck(text)
    if (check !== 'skip') assert.equal(check, undefined, `promtool check metrics: ${check}`)
  })
})

describe("MCP: the server's stream through keyvalet", () => {
  it('narrows each event as it comes, and lets go of the upstream stream when the client leaves', async () => {
    let upstreamClosed!: () => void
    const closed = new Promise<void>((resolve) => { upstreamClosed = resolve })
    const upstream = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(`id: 1\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 5, result: { tools: [{ name: 'list_issues' }, { name: 'secret_tool' }] } })}\n\n`)
        res.on('close', () => upstreamClosed())
      },
    })
    const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  tracker:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }${MCP_BLOCK}
`)
    try {
      await kv.setSecret('tracker-token', SECRET)
      const { key } = await kv.mintKey(['tracker:read'])
      const controller = new AbortController()
      const res = await fetch(`${kv.url}/tracker/mcp`, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', 'last-event-id': '0' }, signal: controller.signal })
      assert.equal(res.status, 200)
      const reader = res.body?.getReader()
      assert.ok(reader)
      let text = ''
      for (let i = 0; i < 50 && !text.includes('\n\n'); i++) text += Buffer.from((await reader.read()).value ?? []).toString()
      // A replayed answer on a resumed stream is narrowed as it comes, before the stream ends.
      assert.equal(text, `id: 1\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 5, result: { tools: [{ name: 'list_issues' }] } })}\n\n`)
      assert.equal(upstream.received[0]?.headers.authorization, `Bearer ${SECRET}`)
      controller.abort()
      const released = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))])
      assert.ok(released, "the upstream's stream was closed after the client left")
      const record = await recorded(kv, (r) => r.method === 'GET')
      assert.equal(record.rule, 'mcp.stream')
      assert.equal(record.error, 'client_closed')
    } finally {
      await kv.close()
      await upstream.close()
    }
  })
})
