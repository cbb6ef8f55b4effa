import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { CallToolRequestSchema, ListResourceTemplatesRequestSchema, ListToolsRequestSchema, type CallToolResult, type ResourceTemplate, type Tool } from '@modelcontextprotocol/sdk/types.js'

/** One HTTP request that reached the server: its method, headers and the JSON-RPC it carried. */
export interface McpReceived {
  readonly method: string
  readonly headers: IncomingMessage['headers']
  readonly body: unknown
}

/** A tools/call the server ran, with the Authorization header it came with. */
export interface McpCall {
  readonly name: string
  readonly arguments: unknown
  readonly authorization: string | undefined
}

export interface McpTestServer {
  readonly url: string
  readonly port: number
  readonly received: McpReceived[]
  readonly calls: McpCall[]
  /** Adds a tool to every session and tells each (notifications/tools/list_changed). */
  addTool(tool: Tool): Promise<void>
  /** Opens the gate slow_count waits at, after its first progress notification (bounded wait). */
  openGate(): void
  close(): Promise<void>
}

/**
 * A real MCP server: the official SDK's low-level Server behind its StreamableHTTPServerTransport
 * (stateful: one session per initialize; answers as event streams, or as JSON with `json`), on 127.0.0.1:0. tools/list
 * pages `pageSize` tools at a time. Tools: `echo_auth` answers with the Authorization header it
 * received; `slow_count` sends a progress notification, then waits for openGate() (10 s at most)
 * before it answers; any other tool answers `ran <name>`. resources/templates/list answers
 * `resourceTemplates`, when given.
 */
export async function startMcpServer(opts: { tools: Tool[]; pageSize?: number; tls?: { key: string; cert: string }; json?: boolean; resourceTemplates?: ResourceTemplate[] }): Promise<McpTestServer> {
  const tools = [...opts.tools]
  const pageSize = opts.pageSize ?? 100
  const received: McpReceived[] = []
  const calls: McpCall[] = []
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: Server }>()
  let openGate: () => void = () => {}
  const gate = new Promise<void>((resolve) => { openGate = resolve })
  let lastAuthorization: string | undefined

  function newServer(): Server {
    const templates = opts.resourceTemplates
    const server = new Server({ name: 'test-mcp', version: '1.0.0' }, { capabilities: { tools: { listChanged: true }, ...(templates === undefined ? {} : { resources: {} }) } })
    if (templates !== undefined) server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: templates }))
    server.setRequestHandler(ListToolsRequestSchema, (request) => {
      const start = Number(request.params?.cursor ?? 0)
      const page = tools.slice(start, start + pageSize)
      const next = start + pageSize < tools.length ? { nextCursor: String(start + pageSize) } : {}
      return { tools: page, ...next }
    })
    server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
      const { name } = request.params
      calls.push({ name, arguments: request.params.arguments, authorization: lastAuthorization })
      if (name === 'echo_auth') return { content: [{ type: 'text', text: `auth: ${lastAuthorization ?? ''}` }] }
      if (name === 'slow_count') {
        const token = request.params._meta?.progressToken
        if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 2 } })
        await Promise.race([gate, new Promise((r) => setTimeout(r, 10_000).unref())])
        return { content: [{ type: 'text', text: 'counted' }] }
      }
      return { content: [{ type: 'text', text: `ran ${name}` }] }
    })
    return server
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
    const text = Buffer.concat(chunks).toString('utf8')
    const body: unknown = text === '' ? undefined : JSON.parse(text)
    received.push({ method: req.method ?? '', headers: req.headers, body })
    lastAuthorization = req.headers.authorization
    const id = req.headers['mcp-session-id']
    let session = typeof id === 'string' ? sessions.get(id) : undefined
    if (session === undefined) {
      if (req.method !== 'POST' || (body as { method?: string } | undefined)?.method !== 'initialize') {
        res.writeHead(400, { 'content-type': 'application/json' })
        return void res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'no session' } }))
      }
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opts.json === true,
        onsessioninitialized: (sid) => void sessions.set(sid, { transport, server }),
      })
      const server = newServer()
      await server.connect(transport)
      session = { transport, server }
    }
    await session.transport.handleRequest(req, res, body)
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  }
  const http: HttpServer = opts.tls === undefined ? createServer(onRequest) : createTlsServer(opts.tls, onRequest)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const address = http.address()
  if (address === null || typeof address === 'string') throw new Error('MCP server has no address')
  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${address.port}`,
    port: address.port,
    received,
    calls,
    async addTool(tool) {
      tools.push(tool)
      for (const { server } of sessions.values()) await server.sendToolListChanged()
    },
    openGate: () => openGate(),
    async close() {
      openGate()
      for (const { transport } of sessions.values()) await transport.close()
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
}
