import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { fetch as undiciFetch, ProxyAgent } from 'undici'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startMcpServer, type McpTestServer } from '../helpers/mcp-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'
import { allToolNames, MCP_BLOCK, recorded, refusalOf, TOOLS } from '../helpers/mcp-client.ts'

const SECRET = 'mcp_forwardServerToken_0123456789abcdef'
const HOST = 'mcp.tracker.test'

describe('MCP through the forward proxy (intercepted TLS), the server answering in JSON', () => {
  let server: McpTestServer
  let dns: DnsServer
  let kv: TestKeyvalet
  let client: Client
  let proxy: ProxyAgent

  before(async () => {
    const pki = upstreamCertificate(HOST)
    server = await startMcpServer({ tools: TOOLS, pageSize: 3, tls: pki.tls, json: true })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  tracker:
    upstream: https://${HOST}:${server.port}
    ca_file: tracker-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }${MCP_BLOCK}
`, { files: { 'tracker-ca.pem': pki.caPem } })
    await kv.setSecret('tracker-token', SECRET)
    const { key } = await kv.mintKey(['tracker:read'])
    // The sandbox's client: the official SDK over undici's fetch, through keyvalet with the task key and keyvalet's CA.
    proxy = new ProxyAgent({ uri: kv.forwardUrl ?? '', token: `Basic ${Buffer.from(`task:${key}`).toString('base64')}`, requestTls: { ca: kv.caCertPem } })
    const viaProxy = ((url: string | URL, init?: object) => undiciFetch(url, { ...init, dispatcher: proxy })) as unknown as FetchLike
    client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`https://${HOST}:${server.port}/mcp`), { fetch: viaProxy }))
  })
  after(async () => {
    await client?.close()
    await proxy?.close()
    await kv?.close()
    await server?.close()
    await dns?.close()
  })

  it('lists only the tools a read grant allows, every JSON page narrowed', async () => {
    assert.deepEqual(await allToolNames(client), ['list_issues', 'echo_auth', 'slow_count'])
    const record = await recorded(kv, (r) => r.mcp?.[0]?.method === 'tools/list')
    assert.equal(record.mode, 'forward')
    assert.equal(record.rule, 'mcp.method:tools/list')
  })

  it('forwards an allowed call with the real credential and refuses one above the grant', async () => {
    const result = await client.callTool({ name: 'list_issues', arguments: { repo: 'acme/app' } })
    assert.deepEqual(result.content, [{ type: 'text', text: 'ran list_issues' }])
    assert.deepEqual(server.calls.at(-1), { name: 'list_issues', arguments: { repo: 'acme/app' }, authorization: `Bearer ${SECRET}` })
    const callsBefore = server.calls.length
    const err = await refusalOf(client.callTool({ name: 'create_issue', arguments: { repo: 'acme/app', title: 'bug' } }))
    assert.match(err.message, /keyvalet refused tools\/call of tool "create_issue": .*\(severity_exceeds_grant\)/)
    assert.equal(server.calls.length, callsBefore)
    const record = await recorded(kv, (r) => r.mcp?.[0]?.tool === 'create_issue')
    assert.equal(record.mode, 'forward')
    assert.equal(record.decision, 'deny')
    assert.equal(record.rule, 'create-issue')
    assert.equal(record.reason, 'severity_exceeds_grant')
  })

  it('masks the credential the server echoes in a JSON answer', async () => {
    const echoed = await client.callTool({ name: 'echo_auth', arguments: {} })
    const text = (echoed.content as { text: string }[])[0]?.text ?? ''
    assert.match(text, /^auth: Bearer \*+$/)
    assert.equal((await recorded(kv, (r) => r.mcp?.[0]?.tool === 'echo_auth')).redactions, 1)
  })
})
