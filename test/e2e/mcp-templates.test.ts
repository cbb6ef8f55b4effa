import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { eventually } from '../helpers/eventually.ts'
import { startMcpServer, type McpTestServer } from '../helpers/mcp-server.ts'
import { TOOLS } from '../helpers/mcp-client.ts'

const SECRET = 'mcp_templatesServerToken_0123456789abcdef'
const TEMPLATES = [
  { uriTemplate: 'docs://{name}', name: 'doc' },
  { uriTemplate: 'docs://{+path}', name: 'doc-tree' },
  { uriTemplate: 'repo://acme/{repo}/issues', name: 'acme-issues' },
  { uriTemplate: 'repo://{owner}/{repo}', name: 'any-repo' },
  { uriTemplate: 'admin://{setting}', name: 'admin-setting' },
  { uriTemplate: 'files:///{+path}', name: 'files' },
  { uriTemplate: 'broken://{name', name: 'broken' },
]

describe('MCP resources/templates/list shows only the templates the grant\'s resource rules allow (official SDK both ends)', () => {
  let server: McpTestServer
  let kv: TestKeyvalet
  const clients: Client[] = []

  before(async () => {
    server = await startMcpServer({ tools: TOOLS, resourceTemplates: TEMPLATES })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  srv:
    upstream: ${server.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: srv-token, inject: bearer }
    mcp:
      endpoint: /mcp
      resources:
        - { id: docs, uri: "docs://*", severity: read }
        - { id: acme-repos, uri: "repo://acme/**", severity: read }
        - { id: admin, uri: "admin://*", severity: admin }
        - { id: files, uri: "files:///**", severity: read }
`)
    await kv.setSecret('srv-token', SECRET)
  })
  after(async () => {
    for (const c of clients) await c.close()
    await kv?.close()
    await server?.close()
  })

  async function templatesFor(grant: string): Promise<string[]> {
    const { key } = await kv.mintKey([grant])
    const client = new Client({ name: 'agent', version: '1.0.0' })
    clients.push(client)
    await client.connect(new StreamableHTTPClientTransport(new URL(`${kv.url}/srv/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }))
    return (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)
  }

  it('a template is listed when a granted rule matches every URI it expands to; the server listed them all', async () => {
    const before = server.received.length
    assert.deepEqual(await templatesFor('srv:read'), ['docs://{name}', 'repo://acme/{repo}/issues', 'files:///{+path}'])
    assert.deepEqual(await templatesFor('srv:admin'), ['docs://{name}', 'repo://acme/{repo}/issues', 'admin://{setting}', 'files:///{+path}'])
    assert.deepEqual(await templatesFor('srv:read:docs'), ['docs://{name}'])
    const lists = server.received.slice(before).filter((r) => (r.body as { method?: string } | undefined)?.method === 'resources/templates/list')
    assert.equal(lists.length, 3, 'the server answered every list in full: keyvalet narrowed them')
    assert.ok(lists.every((r) => r.headers.authorization === `Bearer ${SECRET}`), 'with the real credential')
    // A streamed answer's closing record is committed once the stream ended, which may be after the client read it.
    const records = await eventually(async () => {
      const closed = (await kv.audit()).filter((r) => r.phase !== 'open' && r.mcp?.some((m) => m.method === 'resources/templates/list'))
      return closed.length >= 3 ? closed : undefined
    }, 'three closed records of resources/templates/list')
    assert.equal(records.length, 3)
    for (const r of records) assert.deepEqual([r.decision, r.rule, r.status], ['allow', 'mcp.method:resources/templates/list', 200])
  })
})
