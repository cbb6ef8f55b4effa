/**
 * The severities a trusted server's tool annotations give its tools, learned from the tools/list
 * answers keyvalet relays, per task session, connector and MCP session: a tools/call of a tool
 * no rule names is decided on them (decide.ts). A tool the server never listed to this session
 * has none, so it is refused. Bounded: the least recently used entries go first, and a session
 * whose entry went is refused such tools until its client lists them again.
 */

import type { Severity } from '../model/policy.ts'
import { isObject } from './jsonrpc.ts'

const MAX_SESSIONS = 10_000
const MAX_TOOLS = 2_000

/**
 * MCP's tool annotations (2025-03-26 on): readOnlyHint (default false) → read; otherwise
 * destructiveHint (default true) → admin, or write when the server says false.
 */
export function annotatedSeverity(annotations: unknown): Severity {
  if (!isObject(annotations)) return 'admin'
  if (annotations.readOnlyHint === true) return 'read'
  return annotations.destructiveHint === false ? 'write' : 'admin'
}

export class ToolAnnotations {
  readonly #sessions = new Map<string, Map<string, Severity>>()

  static key(session: string, connector: string, mcpSession: string | undefined): string {
    return `${session}\n${connector}\n${mcpSession ?? ''}`
  }

  get(key: string): ReadonlyMap<string, Severity> | undefined {
    const tools = this.#sessions.get(key)
    if (tools !== undefined) {
      this.#sessions.delete(key)
      this.#sessions.set(key, tools)
    }
    return tools
  }

  /** Records one listed tool (a page of tools/list at a time: pages add up). */
  learn(key: string, name: string, annotations: unknown): void {
    let tools = this.#sessions.get(key)
    if (tools === undefined) {
      if (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value as string)
      tools = new Map()
      this.#sessions.set(key, tools)
    }
    if (tools.size >= MAX_TOOLS && !tools.has(name)) return
    tools.set(name, annotatedSeverity(annotations))
  }
}
