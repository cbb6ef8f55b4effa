/**
 * What a client POSTs to an MCP endpoint: one JSON-RPC 2.0 message or a batch (an array) of
 * them (MCP's Streamable HTTP transport). Each is read into the facts the decision needs; a
 * message that is not valid JSON-RPC, or whose params are not what its method takes, is refused
 * whole rather than guessed at.
 */

export type JsonRpcId = string | number

export type ClientMessage =
  | { readonly kind: 'request'; readonly id: JsonRpcId; readonly method: string; readonly item: ItemRef | undefined }
  | { readonly kind: 'notification'; readonly method: string; readonly item: undefined }
  /** The client answering a request of the server (sampling, elicitation, roots). */
  | { readonly kind: 'response'; readonly id: JsonRpcId | null }

/** The tool, prompt or resource a request names, with its arguments (tools and prompts; `{}` when absent). */
export interface ItemRef {
  readonly kind: 'tool' | 'prompt' | 'resource'
  /** The tool or prompt name, or the resource URI. */
  readonly key: string
  readonly arguments: Readonly<Record<string, unknown>> | undefined
}

/** JSON-RPC's own codes for a message that cannot be read. */
export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600
export const INVALID_PARAMS = -32602

export type ReadMessages =
  | { readonly batch: boolean; readonly messages: readonly ClientMessage[] }
  | { readonly invalid: string; readonly code: number }

export function readMessages(json: unknown): ReadMessages {
  const batch = Array.isArray(json)
  const raw: unknown[] = batch ? json : [json]
  if (raw.length === 0) return { invalid: 'an empty batch', code: INVALID_REQUEST }
  const messages: ClientMessage[] = []
  for (const [i, value] of raw.entries()) {
    const read = readMessage(value)
    if ('invalid' in read) return { invalid: batch ? `message ${i} of the batch: ${read.invalid}` : read.invalid, code: read.code }
    messages.push(read)
  }
  return { batch, messages }
}

function readMessage(value: unknown): ClientMessage | { invalid: string; code: number } {
  const invalid = (why: string, code = INVALID_REQUEST) => ({ invalid: why, code })
  if (!isObject(value) || value.jsonrpc !== '2.0') return invalid('not a JSON-RPC 2.0 message')
  const { id, method, params } = value
  if (method === undefined) {
    if (!('result' in value) && !('error' in value)) return invalid('neither a request, a notification nor a response')
    if (id !== null && !isId(id)) return invalid('a response id must be a string or a number')
    return { kind: 'response', id }
  }
  if (typeof method !== 'string' || method === '') return invalid('method must be a non-empty string')
  if (params !== undefined && !isObject(params)) return invalid('params must be an object', INVALID_PARAMS)
  if (id === undefined) {
    // A notification names no tool, prompt or resource: only the methods' own rules apply.
    return { kind: 'notification', method, item: undefined }
  }
  if (!isId(id)) return invalid('a request id must be a string or a number')
  const item = itemOf(method, params)
  if (typeof item === 'string') return invalid(item, INVALID_PARAMS)
  return { kind: 'request', id, method, item }
}

/** The item a method acts on, or why its params do not name one; undefined for other methods. */
function itemOf(method: string, params: Record<string, unknown> | undefined): ItemRef | string | undefined {
  switch (method) {
    case 'tools/call':
    case 'prompts/get': {
      const kind = method === 'tools/call' ? 'tool' : 'prompt'
      if (typeof params?.name !== 'string') return `${method} needs params.name, a string`
      const args = params.arguments ?? {}
      if (!isObject(args)) return `${method}: params.arguments must be an object`
      return { kind, key: params.name, arguments: args }
    }
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      if (typeof params?.uri !== 'string') return `${method} needs params.uri, a string`
      return { kind: 'resource', key: params.uri, arguments: undefined }
    default:
      return undefined
  }
}

function isId(id: unknown): id is JsonRpcId {
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
