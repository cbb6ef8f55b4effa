/**
 * What the server's lists show the task: a JSON-RPC result carrying a `tools`, `prompts`,
 * `resources` or `resourceTemplates` array (tools/list, prompts/list, resources/list,
 * resources/templates/list, each page of a paginated one) keeps
 * only the items the task may use. Told by the result's shape, not by the request it answers, so
 * a list replayed on a resumed stream is narrowed too. Other messages are left as they are.
 */

import { isObject } from './jsonrpc.ts'

/** Which items the task may see. `tool` also hears the tool's annotations (annotations.ts learns from them). */
export interface ListView {
  tool(name: string, annotations: unknown): boolean
  prompt(name: string): boolean
  resource(uri: string): boolean
  /** An RFC 6570 URI template of resources/templates/list. */
  template(uriTemplate: string): boolean
}

/** The message (or batch) with its lists narrowed, or undefined when it needs no change. */
export function narrowed(message: unknown, view: ListView): unknown {
  if (Array.isArray(message)) {
    let changed = false
    const out = message.map((m: unknown) => {
      const n = narrowed(m, view)
      if (n === undefined) return m
      changed = true
      return n
    })
    return changed ? out : undefined
  }
  if (!isObject(message) || !isObject(message.result)) return undefined
  let result: Record<string, unknown> = message.result
  const keep = (field: string, may: (item: Record<string, unknown>) => boolean): void => {
    const items = result[field]
    if (!Array.isArray(items)) return
    const kept = items.filter((item: unknown) => isObject(item) && may(item))
    if (kept.length !== items.length) result = { ...result, [field]: kept }
  }
  keep('tools', (t) => typeof t.name === 'string' && view.tool(t.name, t.annotations))
  keep('prompts', (p) => typeof p.name === 'string' && view.prompt(p.name))
  keep('resources', (r) => typeof r.uri === 'string' && view.resource(r.uri))
  keep('resourceTemplates', (r) => typeof r.uriTemplate === 'string' && view.template(r.uriTemplate))
  return result === message.result ? undefined : { ...message, result }
}

/** A JSON text narrowed, or undefined when it is unchanged (or not JSON: the client cannot read it either). */
export function narrowedText(text: string, view: ListView): string | undefined {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    return undefined
  }
  const out = narrowed(message, view)
  return out === undefined ? undefined : JSON.stringify(out)
}
