import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { eventually } from '../helpers/eventually.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { refusalOf, TOOLS } from '../helpers/mcp-client.ts'
import { startMcpServer, type McpTestServer } from '../helpers/mcp-server.ts'

describe('approvals per MCP tool: delete_* waits for a person; a refusal reaches the agent as a JSON-RPC error', () => {
  let server: McpTestServer
  let kv: TestKeyvalet
  let client: Client
  let session: string
  let operator: { token: string; id: string }

  before(async () => {
    server = await startMcpServer({ tools: TOOLS })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  tracker:
    upstream: ${server.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }
    mcp:
      endpoint: /mcp
      tools:
        - { id: list-issues, name: list_issues, severity: read }
        - { id: delete, name: "delete_*", severity: admin, approval: { summary: "Delete {params.arguments.repo}" } }
`, { admin: {} })
    await kv.setSecret('tracker-token', 'mcp_realServerToken_0123456789')
    operator = await kv.adminToken('operator', { name: 'mcp-approver' })
    const minted = await kv.mintKey(['tracker:admin'])
    session = minted.session
    client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`${kv.url}/tracker/mcp`), { requestInit: { headers: { authorization: `Bearer ${minted.key}` } } }))
  })
  after(async () => {
    await client?.close()
    await kv?.close()
    await server?.close()
  })

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${kv.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${operator.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    return { status: res.status, json: (await res.json()) as any }
  }
  const parked = () => eventually(async () => ((await admin('GET', '/v1/approvals?wait=5')).json.approvals as any[]).find((a) => a.session === session), 'the tool call to be parked')

  it('a call of a tool without approval goes at once; delete_repository waits, and runs once approved', async () => {
    await client.callTool({ name: 'list_issues', arguments: { repo: 'acme/app' } })
    const call = client.callTool({ name: 'delete_repository', arguments: { repo: 'acme/app' } })
    const pending = await parked()
    assert.deepEqual([pending.rule, pending.summary], ['delete', 'Delete acme/app'])
    assert.equal(server.calls.filter((c) => c.name === 'delete_repository').length, 0, 'nothing reaches the server before a yes')
    assert.equal((await admin('POST', `/v1/approvals/${pending.id}/approve`, {})).status, 200)
    const result = (await call) as { content: { text: string }[] }
    assert.equal(result.content[0]?.text, 'ran delete_repository')
    assert.equal(server.calls.filter((c) => c.name === 'delete_repository').length, 1)
  })

  it('denied: the SDK hands the agent a JSON-RPC error with the reason; the server never sees the call', async () => {
    const before = server.calls.length
    const call = refusalOf(client.callTool({ name: 'delete_repository', arguments: { repo: 'acme/other' } }))
    const pending = await parked()
    await admin('POST', `/v1/approvals/${pending.id}/deny`, { reason: 'keep that repository' })
    const refused = await call
    assert.match(refused.message, /A person refused this request: keep that repository/)
    assert.equal((refused.data as { keyvalet_error?: string }).keyvalet_error, 'approval_denied')
    assert.equal(server.calls.length, before)
    const record = (await kv.audit()).filter((r) => r.session === session && r.mcp?.some((m) => m.tool === 'delete_repository')).at(-1)
    assert.deepEqual([record?.error, record?.approval?.decision, record?.approval?.reason], ['approval_denied', 'denied', 'keep that repository'])
  })
})
