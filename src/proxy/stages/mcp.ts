import { createHash } from 'node:crypto'
import { pipeline, Readable } from 'node:stream'
import { canonicalJson } from '../../audit/canonical-json.ts'
import type { McpAuditEntry } from '../../audit/record.ts'
import { KeyvaletError } from '../../errors.ts'
import { ToolAnnotations } from '../../mcp/annotations.ts'
import { decideBatch, decideTransport, templateVisible, visible, type McpDecideArgs, type McpDecision } from '../../mcp/decide.ts'
import { INVALID_REQUEST, PARSE_ERROR, readMessages, type ClientMessage } from '../../mcp/jsonrpc.ts'
import { narrowedText, type ListView } from '../../mcp/lists.ts'
import { invalidMessage, refusal } from '../../mcp/reply.ts'
import { EventStream, eventData, withData } from '../../mcp/sse.ts'
import type { Connector, McpPolicy } from '../../model/policy.ts'
import { parseStrictJson } from '../../policy/strict-json.ts'
import type { AdmittedContext, OutboundContext, UpstreamResponse } from '../context.ts'
import { jsonBodyProblem, requestCarriesBody } from '../headers.ts'
import type { Stage } from '../pipeline.ts'
import { readBody } from './decide.ts'

/** The list methods whose answers are narrowed (lists.ts). */
const LIST_METHODS = new Set(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list'])
/** The most of one answer (a JSON body, an event) held to narrow its lists. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

/**
 * decide, for a connector whose upstream speaks MCP: a request to its endpoint is decided here,
 * on the JSON-RPC messages it carries (src/mcp/decide.ts), before anything is forwarded; a
 * request to any other path goes to the HTTP decide as usual. The POST body is read (bounded by
 * limits.max_body_inspect_bytes) and forwarded as read. Refusals are JSON-RPC errors (reply.ts).
 */
export function createMcpDecide(connector: Connector, httpDecide: Stage, maxBodyBytes: number, annotations: ToolAnnotations): Stage {
  const policy = connector.mcp
  if (policy === undefined) return httpDecide
  return {
    name: 'mcp-decide',
    async run(ctx) {
      if (!policy.endpoints.some((e) => e.match(ctx.segments))) return httpDecide.run(ctx)
      const method = ctx.req.method ?? 'GET'
      const key = annotationsKey(ctx)
      const args = decideArgs(ctx, policy, annotations, key)
      if (ctx.upgrade !== undefined || ctx.rawQuery !== '' || (method !== 'POST' && method !== 'GET' && method !== 'DELETE')) {
        throw endpointRefusal(ctx, method)
      }
      if (method !== 'POST') {
        if (requestCarriesBody(ctx.req)) throw new KeyvaletError('body_unexpected', { message: `${method} on an MCP endpoint takes no body; send the request without one (body_unexpected).` })
        const decision = decideTransport(args, method)
        ctx.mcp = { rule: decision.rule, decisions: [decision], messages: [], narrow: method === 'GET', annotationsKey: key }
        if (decision.effect === 'deny') throw new KeyvaletError('policy_denied', { detail: { reason: decision.reason, rule: decision.rule ?? null, why: decision.detail } })
        return
      }
      const problem = jsonBodyProblem(ctx.req.headers, 'checked')
      if (problem !== undefined) throw invalidMessage(ctx.id, problem, INVALID_REQUEST)
      const body = await readBody(ctx.req, maxBodyBytes)
      ctx.body = body
      const facts = parseStrictJson(body)
      if ('invalid' in facts) throw invalidMessage(ctx.id, facts.invalid, PARSE_ERROR)
      const read = readMessages(facts.json)
      if ('invalid' in read) throw invalidMessage(ctx.id, read.invalid, read.code)
      const decisions = decideBatch(args, read.messages)
      const allowed = decisions.every((d) => d.effect === 'allow')
      ctx.mcp = {
        rule: allowed ? decisions[0]?.rule : undefined,
        decisions,
        messages: read.messages.map((m, i) => auditEntry(m, decisions[i] as McpDecision)),
        narrow: read.messages.some((m) => m.kind === 'request' && LIST_METHODS.has(m.method)),
        annotationsKey: key,
      }
      if (!allowed) throw refusal(ctx.id, read.batch, read.messages, decisions)
    },
  }
}

/**
 * mcp-lists, after forward: the lists in the answer to a request to an MCP endpoint (a JSON body,
 * or each event of an event stream, as it comes) show only what the task may use (lists.ts),
 * and a trusted server's tool annotations are learned from them (annotations.ts).
 */
export function createMcpLists(connector: Connector, annotations: ToolAnnotations): Stage<OutboundContext> | undefined {
  const policy = connector.mcp
  if (policy === undefined) return undefined
  return {
    name: 'mcp-lists',
    async run(ctx) {
      const upstream = ctx.upstream
      const exchange = ctx.mcp
      if (upstream === undefined || exchange?.narrow !== true || upstream.statusCode < 200 || upstream.statusCode >= 300) return
      const type = String(upstream.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
      if (type !== 'application/json' && type !== 'text/event-stream') return
      const coding = String(upstream.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
      if (coding !== 'identity') {
        discard(upstream)
        throw new KeyvaletError('upstream_response_invalid', { detail: { why: 'mcp_list_coded', content_encoding: coding.slice(0, 40) } })
      }
      const view = listView(decideArgs(ctx, policy, annotations, exchange.annotationsKey), policy, annotations, exchange.annotationsKey)
      ctx.upstream = type === 'application/json' ? await narrowJson(ctx, upstream, view) : narrowEvents(upstream, view)
    },
  }
}

function decideArgs(ctx: AdmittedContext, policy: McpPolicy, annotations: ToolAnnotations, key: string): McpDecideArgs {
  return { policy, connector: ctx.connector.name, grants: ctx.session.grants, annotated: policy.trustAnnotations ? annotations.get(key) : undefined }
}

function annotationsKey(ctx: AdmittedContext): string {
  const header = ctx.req.headers['mcp-session-id']
  return ToolAnnotations.key(ctx.session.id, ctx.connector.name, typeof header === 'string' ? header : undefined)
}

function listView(args: McpDecideArgs, policy: McpPolicy, annotations: ToolAnnotations, key: string): ListView {
  return {
    tool(name, toolAnnotations) {
      if (!policy.trustAnnotations) return visible(args, { kind: 'tool', key: name })
      annotations.learn(key, name, toolAnnotations)
      return visible({ ...args, annotated: annotations.get(key) }, { kind: 'tool', key: name })
    },
    prompt: (name) => visible(args, { kind: 'prompt', key: name }),
    resource: (uri) => visible(args, { kind: 'resource', key: uri }),
    template: (uriTemplate) => templateVisible(args, uriTemplate),
  }
}

/** A JSON answer, read whole (bounded), narrowed, with its length set again. */
async function narrowJson(ctx: OutboundContext, upstream: UpstreamResponse, view: ListView): Promise<UpstreamResponse> {
  const chunks: Buffer[] = []
  let size = 0
  const onAbort = (): void => void upstream.body.destroy(ctx.signal?.reason as Error)
  ctx.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_MESSAGE_BYTES) throw new KeyvaletError('upstream_response_invalid', { detail: { why: 'mcp_answer_too_large', limit: MAX_MESSAGE_BYTES } })
      chunks.push(chunk)
    }
  } catch (err) {
    discard(upstream)
    throw ctx.signal?.aborted === true ? ctx.signal.reason : err
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort)
  }
  const text = Buffer.concat(chunks, size).toString('utf8')
  const out = Buffer.from(narrowedText(text, view) ?? text)
  return replaced(upstream, { ...upstream.headers, 'content-length': String(out.length) }, Object.assign(Readable.from([out]), { dump: async () => {} }))
}

/** An event stream, narrowed one event at a time as each arrives. */
function narrowEvents(upstream: UpstreamResponse, view: ListView): UpstreamResponse {
  const events = new EventStream((event) => {
    const text = event.toString('utf8')
    const data = eventData(text)
    const narrowed = data === undefined ? undefined : narrowedText(data, view)
    return narrowed === undefined ? event : Buffer.from(withData(text, narrowed))
  }, MAX_MESSAGE_BYTES)
  // Either side failing or closing early ends both: a relay that gives up on the events lets go of the upstream.
  pipeline(upstream.body, events, () => {})
  const headers = { ...upstream.headers }
  delete headers['content-length']
  return replaced(upstream, headers, events)
}

/** The response with another body: the relay reads it as it reads the upstream's (data, end, error, dump, destroy). */
function replaced(upstream: UpstreamResponse, headers: UpstreamResponse['headers'], body: Readable & { dump(): Promise<void> }): UpstreamResponse {
  return { ...upstream, headers, body }
}

function discard(upstream: UpstreamResponse): void {
  upstream.body.on('error', () => {})
  upstream.body.destroy()
}

/** The record's entry for one message: what it named, never an argument value. */
function auditEntry(message: ClientMessage, decision: McpDecision): McpAuditEntry {
  const base = { decision: decision.effect, reason: decision.reason, rule: decision.rule ?? null }
  if (message.kind === 'response') return { method: '(response)', ...base }
  const item = message.item
  const method = message.method.slice(0, 128)
  if (item === undefined) return { method, ...base }
  const key = item.key.slice(0, 256)
  const named = item.kind === 'tool' ? { tool: key } : item.kind === 'prompt' ? { prompt: key } : { uri: key }
  const digest = item.arguments === undefined ? {} : { arguments_digest: `sha256:${createHash('sha256').update(canonicalJson(item.arguments)).digest('hex')}` }
  return { method, ...named, ...digest, ...base }
}

/** A request to the endpoint that is not MCP's: a query, an upgrade, another method. */
function endpointRefusal(ctx: AdmittedContext, method: string): KeyvaletError {
  const [reason, message] = ctx.upgrade !== undefined
    ? ['upgrade_not_allowed', 'An MCP endpoint takes no protocol upgrade (upgrade_not_allowed).']
    : ctx.rawQuery !== ''
      ? ['query_not_allowed', 'An MCP endpoint takes no query parameters (query_not_allowed).']
      : ['method_not_allowed', `${method.slice(0, 32)} is not allowed on an MCP endpoint: POST, GET and DELETE are (method_not_allowed).`]
  return new KeyvaletError('policy_denied', { message, detail: { reason, rule: null, why: `the MCP endpoint of connector ${ctx.connector.name}` } })
}
