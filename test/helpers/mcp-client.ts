import assert from 'node:assert/strict'
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { McpError, type Tool } from '@modelcontextprotocol/sdk/types.js'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { TestKeyvalet } from './keyvalet.ts'

/** What the MCP end-to-end tests share: the server's tools, the connector's rules for them, and the client side's checks. */

export const object = (properties: Record<string, object> = {}) => ({ type: 'object' as const, properties })

export const TOOLS: Tool[] = [
  { name: 'list_issues', inputSchema: object({ repo: { type: 'string' } }) },
  { name: 'create_issue', inputSchema: object({ repo: { type: 'string' }, title: { type: 'string' } }) },
  { name: 'delete_repository', inputSchema: object({ repo: { type: 'string' } }) },
  { name: 'secret_tool', inputSchema: object() },
  { name: 'echo_auth', inputSchema: object() },
  { name: 'slow_count', inputSchema: object() },
  { name: 'read_docs', inputSchema: object(), annotations: { readOnlyHint: true } },
  { name: 'drop_everything', inputSchema: object(), annotations: { readOnlyHint: false } },
]

/** The connector's `mcp` block: rules for some tools; secret_tool, read_docs, drop_everything have none. */
export const MCP_BLOCK = `
    mcp:
      endpoint: /mcp
      tools:
        - { id: list-issues, name: list_issues, severity: read }
        - { id: create-issue, name: create_issue, severity: write,
            arguments: { type: object, required: [repo, title], properties: { repo: { const: acme/app }, title: { type: string, maxLength: 20 } }, additionalProperties: false } }
        - { id: delete, name: "delete_*", severity: admin }
        - { id: echo-auth, name: echo_auth, severity: read }
        - { id: slow-count, name: slow_count, severity: read }`

/** Every page of tools/list, as the client sees them. */
export async function allToolNames(client: Client): Promise<string[]> {
  const names: string[] = []
  let cursor: string | undefined
  for (let page = 0; page < 20; page++) {
    const result = await client.listTools(cursor === undefined ? {} : { cursor })
    names.push(...result.tools.map((t) => t.name))
    cursor = result.nextCursor
    if (cursor === undefined) break
  }
  return names
}

/** The call's refusal, as the SDK hands it to the agent. */
export async function refusalOf(call: Promise<unknown>): Promise<McpError> {
  try {
    await call
  } catch (err) {
    assert.ok(err instanceof McpError, `expected an McpError, got ${String(err)}`)
    return err
  }
  assert.fail('expected the call to be refused')
}

/**
 * The last audit record `which` picks, once written: a client holds an answer sent as an event
 * before the stream's end, which waits for the record (bounded wait).
 */
export async function recorded(kv: TestKeyvalet, which: (r: AuditRecord) => boolean, after = 0): Promise<AuditRecord> {
  for (let i = 0; i < 100; i++) {
    const found = (await kv.audit()).filter((r) => r.seq > after && r.phase !== 'open' && which(r)).at(-1)
    if (found !== undefined) return found
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.fail('no such audit record was written')
}

export const naming = (tool: string) => (r: AuditRecord): boolean => r.mcp?.some((m) => m.tool === tool) === true
export const lastSeq = async (kv: TestKeyvalet): Promise<number> => (await kv.audit()).at(-1)?.seq ?? 0
