import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ServerResponse } from 'node:http'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Received, type Upstream } from '../helpers/upstream.ts'

const OPENAI_KEY = 'sk-proj-attributionRealKey_000111222'
const ANTHROPIC_KEY = 'sk-ant-attributionRealKey-333444555'
const CLIENT = fileURLToPath(new URL('../helpers/openai-client.ts', import.meta.url))
const PIECES = ['Hel', 'lo', '!']

interface Line { readonly type: string; readonly [k: string]: unknown }

/** The official OpenAI SDK as a sandboxed child process (test/helpers/openai-client.ts), bounded. */
function runSdk(args: string[], onLine?: (line: Line) => void): Promise<{ code: number | null; lines: Line[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: Line[] = []
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 20_000) stderr += c.toString() })
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as Line
      lines.push(line)
      onLine?.(line)
    })
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, lines, stderr })
    })
  })
}

/**
 * The model-provider stand-in: OpenAI chat completions (plain or streamed; a stream holds its
 * rest until `gate` opens, bounded) and Anthropic-style messages; everything it got is recorded.
 */
function fakeProvider(state: { gate: Promise<void> | undefined; gateTimedOut: boolean }) {
  return (_req: unknown, res: ServerResponse, received: Received): void => {
    const json = (status: number, value: unknown): void => {
      const body = JSON.stringify(value)
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (received.url === '/v1/models') return json(200, { object: 'list', data: [] })
    if (received.url === '/anthropic/v1/messages') return json(200, { type: 'message', content: [{ type: 'text', text: 'Hi' }] })
    const asked = JSON.parse(received.body.toString('utf8')) as { stream?: boolean; model: string }
    const base = { id: 'chatcmpl-attr', created: 1_700_000_000, model: asked.model }
    if (asked.stream !== true) {
      return json(200, { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: PIECES.join('') }, logprobs: null, finish_reason: 'stop' }] })
    }
    const chunk = (delta: Record<string, string>, finish: string | null): string =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk({ role: 'assistant', content: PIECES[0] ?? '' }, null))
    void (async () => {
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000).unref())
      if ((await Promise.race([state.gate, timeout])) === 'timeout') state.gateTimedOut = true
      for (const piece of PIECES.slice(1)) res.write(chunk({ content: piece }, null))
      res.write(chunk({}, 'stop'))
      res.end('data: [DONE]\n\n')
    })()
  }
}

describe('model-provider user attribution', () => {
  let provider: Upstream
  let kv: TestKeyvalet
  let key: string
  const state: { gate: Promise<void> | undefined; gateTimedOut: boolean } = { gate: undefined, gateTimedOut: false }

  before(async () => {
    provider = await startUpstream({ handler: fakeProvider(state) })
    const local = `    allow_insecure: true\n    allow_addresses: [127.0.0.1/32]\n`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
limits: { max_body_inspect_bytes: 4096 }
connectors:
  openai:
    upstream: ${provider.url}/v1
${local}    credential: { secret: openai-key, inject: bearer }
    attribution: { body_field: [user, safety_identifier] }
    rules:
      - { id: chat, methods: [POST], path: /chat/completions, severity: write }
      - { id: models, methods: [GET], path: /models, severity: read }
  anthropic:
    upstream: ${provider.url}/anthropic
${local}    credential: { secret: anthropic-key, inject: header, header: x-api-key }
    attribution: { body_field: metadata.user_id }
    rules: [{ id: messages, methods: [POST], path: /v1/messages, severity: write }]
  pseudonymous:
    upstream: ${provider.url}/v1
${local}    credential: { secret: openai-key, inject: bearer }
    attribution: { body_field: user, header: X-User-Id, value: hashed }
    rules: [{ id: chat, methods: [POST], path: /chat/completions, severity: write }]
`)
    await kv.setSecret('openai-key', OPENAI_KEY)
    await kv.setSecret('anthropic-key', ANTHROPIC_KEY)
    key = (await kv.mintKey(['openai:write', 'anthropic:write', 'pseudonymous:write'])).key
  })
  after(async () => {
    await kv?.close()
    await provider?.close()
  })

  const sdk = (connector: string): string => JSON.stringify({ baseURL: `${kv.url}/${connector}`, apiKey: key })

  async function since<T>(action: () => Promise<T>): Promise<{ result: T; seen: Received[]; records: Awaited<ReturnType<TestKeyvalet['audit']>> }> {
    const seenFrom = provider.received.length
    const auditFrom = (await kv.audit()).length
    const result = await action()
    return { result, seen: provider.received.slice(seenFrom), records: (await kv.audit()).slice(auditFrom) }
  }

  const bodyOf = (r: Received | undefined): Record<string, unknown> => JSON.parse(r?.body.toString('utf8') ?? '{}') as Record<string, unknown>

  async function post(path: string, body: string, headers: Record<string, string> = {}) {
    // The task key in its slot: x-api-key when the caller names it (Anthropic style), else Authorization.
    const slot = headers['x-api-key'] === undefined ? { authorization: `Bearer ${key}` } : {}
    const res = await request(`${kv.url}${path}`, { method: 'POST', body, headers: { ...slot, 'content-type': 'application/json', ...headers } })
    return { status: res.statusCode, body: (await res.body.json()) as { error?: { code: string } } & Record<string, unknown> }
  }

  it('the OpenAI SDK: user and safety_identifier arrive set to the session user', async () => {
    const { result, seen, records } = await since(() => runSdk(['complete', sdk('openai')]))
    assert.equal(result.code, 0, result.stderr + JSON.stringify(result.lines))
    assert.equal(result.lines[0]?.content, 'Hello!')
    assert.equal(seen.length, 1)
    assert.deepEqual(bodyOf(seen[0]), { model: 'gpt-test', messages: [{ role: 'user', content: 'Say hello' }], user: 'alice', safety_identifier: 'alice' })
    assert.equal(seen[0]?.headers['content-length'], String(seen[0]?.body.length), 'sent with the length of the rewritten body')
    assert.equal(seen[0]?.headers.authorization, `Bearer ${OPENAI_KEY}`)
    assert.deepEqual(records.map((r) => [r.decision, r.connector, r.user, r.rule, r.status, r.bytes_in]), [['allow', 'openai', 'alice', 'chat', 200, seen[0]?.body.length]])
  })

  it('the OpenAI SDK naming the same user itself is allowed', async () => {
    const { result, seen, records } = await since(() => runSdk(['complete', sdk('openai'), JSON.stringify({ user: 'alice' })]))
    assert.equal(result.code, 0, result.stderr + JSON.stringify(result.lines))
    assert.equal(seen.length, 1)
    assert.deepEqual([bodyOf(seen[0]).user, bodyOf(seen[0]).safety_identifier], ['alice', 'alice'])
    assert.deepEqual(records.map((r) => [r.decision, r.status]), [['allow', 200]])
  })

  it('the OpenAI SDK naming another user is refused with attribution_conflict; nothing reaches the provider', async () => {
    const { result, seen, records } = await since(() => runSdk(['complete', sdk('openai'), JSON.stringify({ user: 'bob' })]))
    assert.equal(result.code, 1)
    assert.equal(result.lines[0]?.type, 'error')
    assert.equal(result.lines[0]?.status, 400)
    assert.equal((result.lines[0]?.error as { code?: string } | null)?.code, 'attribution_conflict')
    assert.equal(seen.length, 0)
    assert.deepEqual(records.map((r) => [r.decision, r.error, r.status, r.user, r.detail]), [['deny', 'attribution_conflict', 400, 'alice', { field: 'user' }]])
    assert.ok(!JSON.stringify(records).includes('bob'), 'the other name is not copied into the audit record')
  })

  it('a streamed completion still streams, chunk by chunk, with the user attributed', async () => {
    let open: () => void = () => {}
    state.gate = new Promise<void>((r) => { open = r })
    state.gateTimedOut = false
    const { result, seen, records } = await since(() => runSdk(['stream', sdk('openai')], (line) => { if (line.type === 'chunk') open() }))
    state.gate = undefined
    assert.equal(result.code, 0, result.stderr + JSON.stringify(result.lines))
    assert.equal(state.gateTimedOut, false, 'the first chunk reached the SDK before the rest was sent')
    assert.deepEqual(result.lines.filter((l) => l.type === 'chunk').map((c) => c.content), [...PIECES, null])
    assert.equal(result.lines.at(-1)?.type, 'done')
    assert.deepEqual([bodyOf(seen[0]).stream, bodyOf(seen[0]).user, bodyOf(seen[0]).safety_identifier], [true, 'alice', 'alice'])
    assert.deepEqual(records.map((r) => [r.phase, r.decision, r.status, r.upstream_status]), [['open', 'allow', 200, 200], ['close', 'allow', 200, 200]])
  })

  it('an Anthropic-style body gets metadata.user_id, beside metadata it already had', async () => {
    const { result, seen, records } = await since(() => post('/anthropic/v1/messages', '{"model":"claude-test","max_tokens":5,"metadata":{"tag":"x"},"messages":[]}', { 'x-api-key': key }))
    assert.equal(result.status, 200, JSON.stringify(result.body))
    assert.equal(result.body.type, 'message')
    assert.deepEqual(bodyOf(seen[0]), { model: 'claude-test', max_tokens: 5, metadata: { tag: 'x', user_id: 'alice' }, messages: [] })
    assert.equal(seen[0]?.headers['x-api-key'], ANTHROPIC_KEY)
    assert.deepEqual(records.map((r) => [r.decision, r.connector, r.status]), [['allow', 'anthropic', 200]])

    const other = await since(() => post('/anthropic/v1/messages', '{"metadata":{"user_id":"mallory"}}', { 'x-api-key': key }))
    assert.deepEqual([other.result.status, other.result.body.error?.code, other.seen.length], [400, 'attribution_conflict', 0])
    assert.deepEqual(other.records.map((r) => [r.error, r.detail]), [['attribution_conflict', { field: 'metadata.user_id' }]])
  })

  it('refuses a body that is not JSON, or too large to hold, before anything is sent', async () => {
    const text = await since(() => post('/openai/chat/completions', 'model=gpt-test', { 'content-type': 'text/plain' }))
    assert.deepEqual([text.result.status, text.result.body.error?.code, text.seen.length], [400, 'attribution_body_invalid', 0])
    const array = await since(() => post('/openai/chat/completions', '[{"user":"alice"}]'))
    assert.deepEqual([array.result.status, array.result.body.error?.code, array.seen.length], [400, 'attribution_body_invalid', 0])
    const dup = await since(() => post('/openai/chat/completions', '{"user":"alice","user":"bob"}'))
    assert.deepEqual([dup.result.status, dup.result.body.error?.code, dup.seen.length], [400, 'attribution_body_invalid', 0])
    const big = await since(() => post('/openai/chat/completions', JSON.stringify({ model: 'gpt-test', pad: 'x'.repeat(5000) })))
    assert.deepEqual([big.result.status, big.result.body.error?.code, big.seen.length], [413, 'body_too_large', 0])
    assert.deepEqual([...text.records, ...array.records, ...dup.records, ...big.records].map((r) => [r.decision, r.error, r.detail?.why ?? null]), [
      ['deny', 'attribution_body_invalid', 'content-type is not JSON'],
      ['deny', 'attribution_body_invalid', 'body is not a JSON object'],
      ['deny', 'attribution_body_invalid', 'body has a duplicate object key'],
      ['deny', 'body_too_large', null],
    ])
  })

  it('refuses a body starting with a byte-order mark, or nested deeper than a walk can follow, with a stable code (once internal_error)', async () => {
    const bom = await since(() => post('/openai/chat/completions', '\ufeff{"model":"gpt-test"}'))
    const deep = await since(() => post('/openai/chat/completions', `{"model":${'['.repeat(1500)}${']'.repeat(1500)}}`))
    for (const r of [bom, deep]) assert.deepEqual([r.result.status, r.result.body.error?.code, r.seen.length], [400, 'attribution_body_invalid', 0])
    assert.deepEqual([...bom.records, ...deep.records].map((r) => [r.decision, r.error, r.detail?.why]), [
      ['deny', 'attribution_body_invalid', 'body starts with a byte-order mark'],
      ['deny', 'attribution_body_invalid', 'body nests deeper than 128 levels'],
    ])
  })

  it('a request without a body passes untouched', async () => {
    const res = await since(async () => {
      const r = await request(`${kv.url}/openai/models`, { headers: { authorization: `Bearer ${key}` } })
      return { status: r.statusCode, body: await r.body.json() }
    })
    assert.deepEqual(res.result, { status: 200, body: { object: 'list', data: [] } })
    assert.deepEqual(res.seen.map((r) => [r.method, r.url, r.body.length]), [['GET', '/v1/models', 0]])
    assert.deepEqual(res.records.map((r) => [r.decision, r.rule]), [['allow', 'models']])
  })

  it('hashed: the provider sees a stable pseudonym in the body and the header, never the user id', async () => {
    const first = await since(() => runSdk(['complete', sdk('pseudonymous')]))
    const second = await since(() => runSdk(['complete', sdk('pseudonymous'), JSON.stringify({ user: 'alice' })]))
    assert.equal(first.result.code, 0, first.result.stderr)
    assert.equal(second.result.code, 0, second.result.stderr)
    const pseudonym = bodyOf(first.seen[0]).user
    assert.match(String(pseudonym), /^[0-9a-f]{32}$/)
    assert.equal(bodyOf(second.seen[0]).user, pseudonym, 'stable, and the raw id the sandbox sent is replaced')
    for (const r of [...first.seen, ...second.seen]) {
      assert.equal(r.headers['x-user-id'], pseudonym)
      assert.ok(!(JSON.stringify(r.rawHeaders) + r.body.toString('utf8')).includes('alice'))
    }
    assert.deepEqual([...first.records, ...second.records].map((r) => [r.decision, r.connector, r.user]), [['allow', 'pseudonymous', 'alice'], ['allow', 'pseudonymous', 'alice']])

    const header = await since(() => post('/pseudonymous/chat/completions', '{"model":"gpt-test"}', { 'x-user-id': 'bob' }))
    assert.deepEqual([header.result.status, header.result.body.error?.code, header.seen.length], [400, 'attribution_conflict', 0])
    assert.deepEqual(header.records.map((r) => [r.error, r.detail]), [['attribution_conflict', { header: 'x-user-id' }]])
  })
})
