/**
 * MCP, in-process: (1) the tools/call decision with 200 tool rules, each with an argument schema,
 * on a 1 KiB argument object whose tool is named by the last rule (every earlier rule is tried):
 * the pure decision alone, and with what the stage adds per request (strict JSON parse of the
 * body, JSON-RPC reading, the arguments' digest). (2) How long an event takes from the server's
 * write to the client's read: directly, through keyvalet's gateway on a tools/call answer (relayed
 * as it comes), and on the server's GET stream (each event parsed and its lists narrowed). Server,
 * keyvalet and client share one event loop here, so (2) is keyvalet's own cost per event plus
 * the loop's turns, not the network's.
 * Fork it (sends one McpBenchResult over IPC) or run it alone (`node bench/mcp.ts`, prints JSON).
 */

import { createHash } from 'node:crypto'
import { createServer, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { canonicalJson } from '../src/audit/canonical-json.ts'
import { parseConfig } from '../src/config/load.ts'
import { decideMessage, type McpDecideArgs } from '../src/mcp/decide.ts'
import { readMessages } from '../src/mcp/jsonrpc.ts'
import type { Grant } from '../src/model/policy.ts'
import { parseStrictJson } from '../src/policy/strict-json.ts'
import { startKeyvalet } from '../test/helpers/keyvalet.ts'
import { time, type TimedCase } from './policy.ts'
import { Samples, type LatencySummary } from './stats.ts'

export interface McpBenchResult {
  readonly toolRules: number
  readonly argumentBytes: number
  readonly decide: readonly TimedCase[]
  /** ms from the server's write to the client's read, per event. */
  readonly events: readonly { readonly name: string; readonly first: number; readonly summary: LatencySummary }[]
}

const TOOL_RULES = 200
const ARGUMENTS_SCHEMA = '{ type: object, required: [repo, title, body], additionalProperties: false, properties: { repo: { type: string, pattern: "^[a-z0-9-]+/[a-z0-9-]+$" }, title: { type: string, maxLength: 200 }, body: { type: string, maxLength: 4000 }, labels: { type: array, maxItems: 20, items: { type: string, maxLength: 50 } }, milestone: { type: integer, minimum: 1 } } }'

/** 200 tool rules, every tenth a pattern; the last names `tool_199`. */
export function toolRulesConfig(): string {
  const lines = ['version: 1', 'listen:', '  gateway: "127.0.0.1:0"', 'data_dir: ./data', 'connectors:', '  tracker:', '    upstream: https://mcp.example.com', '    mcp:', '      tools:']
  for (let i = 0; i < TOOL_RULES; i++) {
    const name = i % 10 === 5 ? `ns${i}_*` : `tool_${i}`
    lines.push(`        - { id: t${i}, name: "${name}", severity: ${i % 2 === 0 ? 'read' : 'write'}, arguments: ${ARGUMENTS_SCHEMA} }`)
  }
  return `${lines.join('\n')}\n`
}

/** A 1 KiB argument object the schema accepts. */
function argumentsOfAboutOneKiB(): Record<string, unknown> {
  const args = { repo: 'acme/widgets', title: 'Crash when saving a document with a very long name', body: '', labels: ['bug', 'p1', 'editor', 'save-path'], milestone: 7 }
  args.body = 'x'.repeat(1024 - Buffer.byteLength(JSON.stringify(args)))
  return args
}

function runDecisions(iterations: number): { cases: TimedCase[]; argumentBytes: number } {
  const config = parseConfig(toolRulesConfig(), join(tmpdir(), 'keyvalet-bench-mcp.yaml'))
  const policy = config.policy.connectors.get('tracker')?.mcp
  if (policy === undefined || policy.tools.length !== TOOL_RULES) throw new Error(`expected ${TOOL_RULES} tool rules`)
  const grants: Grant[] = [{ connector: 'tracker', maxSeverity: 'write', rules: undefined }]
  const args: McpDecideArgs = { policy, connector: 'tracker', grants, annotated: undefined }
  const argumentsObject = argumentsOfAboutOneKiB()
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: `tool_${TOOL_RULES - 1}`, arguments: argumentsObject } }))
  const read = readMessages((parseStrictJson(body) as { json: unknown }).json)
  if ('invalid' in read) throw new Error(read.invalid)
  const message = read.messages[0]
  if (message === undefined) throw new Error('no message')
  const expect = `allow:rule_matched:t${TOOL_RULES - 1}`
  const describe = (): string => {
    const d = decideMessage(args, message)
    return `${d.effect}:${d.reason}:${d.rule ?? '-'}`
  }
  if (describe() !== expect) throw new Error(`decision gave ${describe()}, expected ${expect}`)
  const decision = time(iterations, () => (decideMessage(args, message).effect === 'allow' ? 1 : 0))
  const whole = time(Math.max(1000, Math.floor(iterations / 4)), () => {
    const facts = parseStrictJson(body)
    const r = readMessages((facts as { json: unknown }).json)
    if ('invalid' in r || r.messages[0] === undefined) return 0
    const m = r.messages[0]
    const digest = m.kind === 'request' && m.item?.arguments !== undefined ? createHash('sha256').update(canonicalJson(m.item.arguments)).digest('hex') : ''
    return decideMessage(args, m).effect === 'allow' ? digest.length : 0
  })
  return {
    argumentBytes: Buffer.byteLength(JSON.stringify(argumentsObject)),
    cases: [
      { name: `tools/call decision, ${TOOL_RULES} tool rules, last matches, 1 KiB arguments checked`, expect, got: expect, iterations, usPerOp: decision.usPerOp, minUsPerOp: decision.minUsPerOp },
      { name: '... plus strict JSON parse, JSON-RPC read, arguments digest', expect, got: expect, iterations: Math.max(1000, Math.floor(iterations / 4)), usPerOp: whole.usPerOp, minUsPerOp: whole.minUsPerOp },
    ],
  }
}

/** An MCP-shaped server whose streams the bench writes to, one event at a time. */
async function eventServer(): Promise<{ port: number; streams: ServerResponse[]; close(): Promise<void> }> {
  const streams: ServerResponse[] = []
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.flushHeaders()
      streams.push(res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    port: address.port,
    streams,
    close: () => new Promise((resolve) => {
      for (const s of streams) s.destroy()
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** Opens one stream, then times `count` events written one at a time: the server's write to the client's read. */
async function timeEvents(server: Awaited<ReturnType<typeof eventServer>>, open: () => ReturnType<typeof request>, count: number, event: (i: number) => string): Promise<{ first: number; summary: LatencySummary }> {
  const before = server.streams.length
  const res = await open()
  if (res.statusCode !== 200) throw new Error(`stream answered ${res.statusCode}: ${await res.body.text()}`)
  for (let i = 0; i < 200 && server.streams.length === before; i++) await new Promise((r) => setTimeout(r, 5))
  const stream = server.streams.at(-1)
  if (stream === undefined || server.streams.length === before) throw new Error('the stream did not reach the server')
  let waiting: (() => void) | undefined
  let buffered = ''
  res.body.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    if (buffered.includes('\n\n')) {
      buffered = buffered.slice(buffered.lastIndexOf('\n\n') + 2)
      waiting?.()
    }
  })
  const samples = new Samples()
  let first = 0
  for (let i = 0; i < count; i++) {
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`event ${i} did not arrive within 5 s`)), 5000)
      waiting = () => { clearTimeout(timer); resolve() }
    })
    const t0 = process.hrtime.bigint()
    stream.write(event(i))
    await arrived
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (i === 0) first = ms
    samples.push(ms)
    await new Promise((r) => setTimeout(r, 2))
  }
  res.body.destroy()
  stream.end()
  return { first, summary: samples.summary() }
}

async function runEvents(count: number): Promise<McpBenchResult['events']> {
  const server = await eventServer()
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  tracker:
    upstream: http://127.0.0.1:${server.port}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: tracker-token, inject: bearer }
    mcp:
      endpoint: /mcp
      tools: [{ id: tick, name: tick, severity: read }]
`)
  try {
    await kv.setSecret('tracker-token', 'bench-mcp-secret-0123456789')
    const { key } = await kv.mintKey(['tracker:read'])
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` }
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'tick', arguments: {} } })
    const progress = (i: number): string => `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: i } })}\n\n`
    const list = (i: number): string => `event: message\nid: ${i}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: i, result: { tools: [{ name: 'tick', inputSchema: { type: 'object' } }, { name: 'hidden', inputSchema: { type: 'object' } }] } })}\n\n`
    const direct = await timeEvents(server, () => request(`http://127.0.0.1:${server.port}/mcp`, { method: 'POST', headers, body: call }), count, progress)
    const relayed = await timeEvents(server, () => request(`${kv.url}/tracker/mcp`, { method: 'POST', headers, body: call }), count, progress)
    const narrowed = await timeEvents(server, () => request(`${kv.url}/tracker/mcp`, { method: 'GET', headers: { accept: 'text/event-stream', authorization: `Bearer ${key}` } }), count, list)
    return [
      { name: 'direct (no keyvalet)', ...direct },
      { name: 'keyvalet, tools/call answer stream (relayed as it comes)', ...relayed },
      { name: "keyvalet, server's GET stream (each event's lists narrowed)", ...narrowed },
    ]
  } finally {
    await kv.close()
    await server.close()
  }
}

export async function runMcpBench(iterations = 200_000, events = 300): Promise<McpBenchResult> {
  const { cases, argumentBytes } = runDecisions(iterations)
  return { toolRules: TOOL_RULES, argumentBytes, decide: cases, events: await runEvents(events) }
}

if (import.meta.main) {
  const iterations = Number(process.env.BENCH_POLICY_ITERATIONS ?? 200_000)
  try {
    const result = await runMcpBench(iterations)
    if (process.send !== undefined) process.send({ event: 'result', result }, () => process.exit(0))
    else {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
      process.exit(0)
    }
  } catch (err) {
    const error = err instanceof Error ? err.stack ?? err.message : String(err)
    if (process.send !== undefined) process.send({ event: 'error', error }, () => process.exit(1))
    else {
      process.stderr.write(`${error}\n`)
      process.exit(1)
    }
  }
}
