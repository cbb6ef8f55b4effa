import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ServerResponse } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Received, type Upstream } from '../helpers/upstream.ts'

const CLIENT = fileURLToPath(new URL('../helpers/openai-client.ts', import.meta.url))

/** The official OpenAI SDK as the sandbox runs it, against keyvalet's gateway; bounded. */
function runSdk(args: string[]): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 20_000) stderr += c.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, lines: out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>), stderr })
    })
  })
}

const sse = (res: ServerResponse, events: readonly (readonly [string | undefined, unknown])[], end = ''): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  // Each event goes in two writes split inside its JSON, so a reader must carry lines across chunks.
  for (const [name, data] of events) {
    const text = `${name === undefined ? '' : `event: ${name}\n`}data: ${JSON.stringify(data)}\n\n`
    res.write(text.slice(0, 20))
    res.write(text.slice(20))
  }
  res.end(end)
}

/** The wire formats of OpenAI chat completions and responses and Anthropic messages, with the usage each reports. */
function fakeProvider(_req: unknown, res: ServerResponse, received: Received): void {
  const body = JSON.parse(received.body.toString('utf8') || '{}') as { stream?: boolean; model?: string }
  const model = body.model ?? 'unknown'
  if (received.url === '/v1/chat/completions' && body.stream !== true) {
    const text = JSON.stringify({
      id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-test-2025-01-01',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    })
    // Compressed when the client accepts it: the usage is read from the decoded body all the same.
    const gzip = String(received.headers['accept-encoding'] ?? '').includes('gzip')
    const payload = gzip ? gzipSync(text) : Buffer.from(text)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': payload.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
    return void res.end(payload)
  }
  if (received.url === '/v1/chat/completions') {
    const chunk = (delta: object, finish: string | null) => ({ id: 'chatcmpl-2', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })
    return sse(res, [
      [undefined, chunk({ role: 'assistant', content: 'Hel' }, null)],
      [undefined, chunk({ content: 'lo' }, 'stop')],
      [undefined, { id: 'chatcmpl-2', object: 'chat.completion.chunk', created: 1, model, choices: [], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } }],
    ], 'data: [DONE]\n\n')
  }
  if (received.url === '/v1/responses') {
    const response = (status: string, usage: object | null) => ({ id: 'resp_1', object: 'response', created_at: 1, model, status, output: [], usage })
    return sse(res, [
      ['response.created', { type: 'response.created', sequence_number: 0, response: response('in_progress', null) }],
      ['response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello' }],
      ['response.completed', { type: 'response.completed', sequence_number: 2, response: response('completed', { input_tokens: 100, output_tokens: 50, total_tokens: 150, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } }) }],
    ])
  }
  if (received.url === '/v1/messages') {
    return sse(res, [
      ['message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model, content: [], usage: { input_tokens: 20, cache_read_input_tokens: 5, output_tokens: 1 } } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 15 } }],
      ['message_stop', { type: 'message_stop' }],
    ])
  }
  res.writeHead(404).end()
}

describe('model usage: tokens and cost read from responses as they pass, counted against budgets', () => {
  let upstream: Upstream
  let kv: TestKeyvalet

  before(async () => {
    upstream = await startUpstream({ handler: fakeProvider })
    const local = 'allow_insecure: true\n    allow_addresses: [127.0.0.1/32]'
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
budgets:
  llm-tokens: { connector: openai, tokens: 100 }
  llm-cost: { connector: anthropic, cost: 0.001 }
connectors:
  openai:
    upstream: ${upstream.url}/v1
    ${local}
    credential: { secret: openai-key, inject: bearer }
    usage: { prices: { gpt-test: { input: 2, output: 10 }, gpt-test-mini: { input: 0.1, output: 0.4 } } }
    rules:
      - { id: chat, methods: [POST], path: /chat/completions, severity: write }
      - { id: responses, methods: [POST], path: /responses, severity: write }
  anthropic:
    upstream: ${upstream.url}/v1
    ${local}
    credential: { secret: anthropic-key, inject: header, header: x-api-key }
    usage: { prices: { claude-test: { input: 3, output: 15 } } }
    rules:
      - { id: messages, methods: [POST], path: /messages, severity: write }
`)
    await kv.setSecret('openai-key', 'sk-real-openai-0123456789')
    await kv.setSecret('anthropic-key', 'sk-ant-real-0123456789')
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  /** A session's records of outcomes: a stream also has an open record, written before its head. */
  const closing = (records: AuditRecord[], session: string) => records.filter((r) => r.session === session && r.phase !== 'open')
  const usageOf = (r: AuditRecord | undefined) => (r?.detail as { usage?: unknown } | undefined)?.usage

  it('reads the usage of a JSON answer, a streamed chat completion and a streamed response through the OpenAI SDK, and refuses once the tokens are spent', async () => {
    const { key, session } = await kv.mintKey(['openai:write'])
    const sdk = JSON.stringify({ baseURL: `${kv.url}/openai`, apiKey: key })

    const complete = await runSdk(['complete', sdk])
    assert.equal(complete.code, 0, complete.stderr)
    assert.deepEqual(complete.lines[0]?.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }, 'the sandbox gets the answer as sent')
    const stream = await runSdk(['stream', sdk, JSON.stringify({ stream_options: { include_usage: true } })])
    assert.equal(stream.code, 0, stream.stderr)
    assert.deepEqual(stream.lines.filter((l) => l.type === 'chunk').map((l) => l.content), ['Hel', 'lo', null])
    const responses = await runSdk(['responses-stream', sdk])
    assert.equal(responses.code, 0, responses.stderr)
    assert.deepEqual(responses.lines.map((l) => l.event ?? l.type), ['response.created', 'response.output_text.delta', 'response.completed', 'done'])
    assert.equal(upstream.received.length, 3)

    const records = closing(await kv.audit(), session)
    // gpt-test-2025-01-01 is priced as gpt-test (the longest prefix): 3 × 2 + 4 × 10 millionths.
    assert.deepEqual(records.map(usageOf), [
      { model: 'gpt-test-2025-01-01', input_tokens: 3, output_tokens: 4, cost: 46 },
      { model: 'gpt-test', input_tokens: 10, output_tokens: 20, cost: 220 },
      { model: 'gpt-test', input_tokens: 100, output_tokens: 50, cost: 700 },
    ])

    // 187 tokens of 100: the next request is refused before it reaches the upstream.
    const refused = await runSdk(['complete', sdk])
    assert.equal(refused.code, 1)
    assert.deepEqual([refused.lines[0]?.status, (refused.lines[0]?.error as { code?: string } | null)?.code], [429, 'budget_exhausted'])
    assert.equal(upstream.received.length, 3)
    const last = (await kv.audit()).at(-1)
    assert.deepEqual([last?.session, last?.decision, last?.error, last?.detail], [session, 'deny', 'budget_exhausted', { budget: 'llm-tokens', metric: 'tokens', limit: 100 }])
  })

  it('reads an Anthropic message stream (input with cache reads, cumulative output) and counts its cost', async () => {
    const { key, session } = await kv.mintKey(['anthropic:write'])
    const send = () => request(`${kv.url}/anthropic/messages`, {
      method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-test-1', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'Say hello' }] }),
    })
    const first = await send()
    const text = await first.body.text()
    assert.equal(first.statusCode, 200)
    assert.ok(text.includes('"text":"Hello"') && text.includes('message_stop'), 'the stream reaches the sandbox whole')
    // 25 × 3 + 15 × 15 = 300 millionths of the 1000 allowed: still open, and so on until it is spent.
    assert.deepEqual(usageOf((await kv.audit()).at(-1)), { model: 'claude-test-1', input_tokens: 25, output_tokens: 15, cost: 300 })
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const res = await send()
      await res.body.text()
      statuses.push(res.statusCode)
    }
    assert.deepEqual(statuses, [200, 200, 200, 429], 'refused once 1200 of 1000 were spent')
    const records = closing(await kv.audit(), session)
    assert.deepEqual(records.map((r) => r.error), [null, null, null, null, 'budget_exhausted'])
  })
})
