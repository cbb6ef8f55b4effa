import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { upstreamCertificate } from '../helpers/tls.ts'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Received, type Upstream } from '../helpers/upstream.ts'

const REAL_KEY = 'sk-proj-realOpenAIKey_0123456789abcdefXYZ'
const PLACEHOLDER = 'sk-placeholder-for-the-sandbox-0000'
const HOST = 'api.openai.test'
const CLIENT = fileURLToPath(new URL('../helpers/openai-client.ts', import.meta.url))
const STREAM_PIECES = ['Hel', 'lo', ' from', ' the', ' fake']

interface Line {
  readonly type: string
  readonly [k: string]: unknown
}

/**
 * Runs the SDK client as a child process (never a sync call: keyvalet runs in this process).
 * `onLine` sees each stdout line as it arrives. Bounded: killed after `timeoutMs`.
 */
function runClient(args: string[], env: NodeJS.ProcessEnv, onLine?: (line: Line) => void, timeoutMs = 20_000): Promise<{ code: number | null; lines: Line[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: Line[] = []
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 20_000) stderr += c.toString() })
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: Line
      try {
        line = JSON.parse(text) as Line
      } catch {
        line = { type: 'garbage', text }
      }
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

/** The fake OpenAI API. A streamed answer sends its first chunk, then waits for `gate` (bounded). */
function fakeOpenAi(state: { gate: Promise<void> | undefined; gateTimedOut: boolean }) {
  return (_req: unknown, res: ServerResponse, received: Received): void => {
    if (received.method === 'GET' && received.url === '/v1/models') {
      const body = JSON.stringify({ object: 'list', data: [{ id: 'gpt-test', object: 'model', created: 1, owned_by: 'test' }] })
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(body)
    }
    if (received.method !== 'POST' || received.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }))
    }
    const request = JSON.parse(received.body.toString('utf8')) as { stream?: boolean; model: string }
    const created = 1_700_000_000
    if (request.stream !== true) {
      const body = JSON.stringify({
        id: 'chatcmpl-fake-1', object: 'chat.completion', created, model: request.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the fake' }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      return void res.end(body)
    }
    const chunk = (delta: Record<string, string>, finish: string | null) =>
      `data: ${JSON.stringify({ id: 'chatcmpl-fake-2', object: 'chat.completion.chunk', created, model: request.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write(chunk({ role: 'assistant', content: STREAM_PIECES[0] ?? '' }, null))
    const rest = async (): Promise<void> => {
      if (state.gate !== undefined) {
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000).unref())
        if ((await Promise.race([state.gate, timeout])) === 'timeout') state.gateTimedOut = true
      }
      for (const piece of STREAM_PIECES.slice(1)) res.write(chunk({ content: piece }, null))
      res.write(chunk({}, 'stop'))
      res.end('data: [DONE]\n\n')
    }
    void rest()
  }
}

describe('the official OpenAI SDK through keyvalet', () => {
  let upstream: Upstream
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let caFile: string
  let proxyPort: number
  const state: { gate: Promise<void> | undefined; gateTimedOut: boolean } = { gate: undefined, gateTimedOut: false }

  before(async () => {
    const pki = upstreamCertificate(HOST)
    upstream = await startUpstream({ tls: pki.tls, handler: fakeOpenAi(state) })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  openai:
    upstream: https://${HOST}:${upstream.port}/v1
    ca_file: openai-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: openai-key, inject: bearer }
    placeholder: ${PLACEHOLDER}
    rules:
      - { id: chat-completions, methods: [POST], path: /chat/completions, severity: write }
`, { files: { 'openai-ca.pem': pki.caPem } })
    await kv.setSecret('openai-key', REAL_KEY)
    key = (await kv.mintKey(['openai:write'])).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    caFile = join(kv.dir, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    proxyPort = Number(new URL(kv.forwardUrl).port)
  })
  after(async () => {
    await kv?.close()
    await upstream?.close()
    await dns?.close()
  })

  /** The sandbox: the proxy with the task key, keyvalet's CA, the placeholder as the API key. */
  const forwardEnv = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    NODE_USE_ENV_PROXY: '1',
    HTTPS_PROXY: `http://task:${key}@127.0.0.1:${proxyPort}`,
    NO_PROXY: '',
    NODE_EXTRA_CA_CERTS: caFile,
    OPENAI_API_KEY: PLACEHOLDER,
    OPENAI_BASE_URL: `https://${HOST}:${upstream.port}/v1`,
  })

  async function since(auditFrom: number, seenFrom: number) {
    return { records: (await kv.audit()).slice(auditFrom), seen: upstream.received.slice(seenFrom) }
  }

  function assertRealKeyOnly(seen: readonly Received[]): void {
    for (const r of seen) {
      assert.equal(r.headers.authorization, `Bearer ${REAL_KEY}`, 'the fake received the real key')
      const all = JSON.stringify(r.rawHeaders) + r.body.toString('utf8')
      assert.ok(!all.includes(PLACEHOLDER), 'never the placeholder')
      assert.ok(!all.includes(key), 'never the task key')
      assert.equal(r.headers['proxy-authorization'], undefined)
    }
  }

  it('forward mode: a chat completion with HTTPS_PROXY, NODE_EXTRA_CA_CERTS and the placeholder key', async () => {
    const auditFrom = (await kv.audit()).length
    const seenFrom = upstream.received.length
    const { code, lines, stderr } = await runClient(['complete'], forwardEnv())
    assert.equal(code, 0, stderr + JSON.stringify(lines))
    assert.deepEqual(lines, [{ type: 'completion', id: 'chatcmpl-fake-1', model: 'gpt-test', content: 'Hello from the fake', finish: 'stop', usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }])

    const { records, seen } = await since(auditFrom, seenFrom)
    assert.equal(seen.length, 1)
    assert.equal(seen[0]?.method, 'POST')
    assert.equal(seen[0]?.url, '/v1/chat/completions')
    assert.equal(seen[0]?.headers.host, `${HOST}:${upstream.port}`)
    assert.deepEqual(JSON.parse(seen[0]?.body.toString('utf8') ?? ''), { model: 'gpt-test', messages: [{ role: 'user', content: 'Say hello' }] })
    assertRealKeyOnly(seen)

    assert.equal(records.length, 1)
    const r = records[0]
    assert.deepEqual([r?.mode, r?.decision, r?.reason, r?.rule, r?.credential, r?.method, r?.path, r?.status, r?.upstream_status, r?.error, r?.connector, r?.agent],
      ['forward', 'allow', 'rule_matched', 'chat-completions', 'openai-key', 'POST', '/v1/chat/completions', 200, 200, null, 'openai', 'test-agent'])
  })

  it('forward mode: a streamed completion arrives chunk by chunk, in order, unbuffered', async () => {
    const auditFrom = (await kv.audit()).length
    const seenFrom = upstream.received.length
    let openGate: () => void = () => {}
    state.gate = new Promise<void>((r) => { openGate = r })
    state.gateTimedOut = false
    // The fake holds everything after the first chunk until the SDK has yielded that first chunk:
    // a proxy that buffered the stream would make the gate time out.
    const { code, lines, stderr } = await runClient(['stream'], forwardEnv(), (line) => { if (line.type === 'chunk') openGate() })
    state.gate = undefined
    assert.equal(code, 0, stderr + JSON.stringify(lines))
    assert.equal(state.gateTimedOut, false, 'the first chunk reached the SDK before the rest was sent')
    const chunks = lines.filter((l) => l.type === 'chunk')
    assert.deepEqual(chunks.map((c) => c.content), [...STREAM_PIECES, null])
    assert.deepEqual(chunks.map((c) => c.finish), [...STREAM_PIECES.map(() => null), 'stop'])
    assert.ok(chunks.every((c) => c.id === 'chatcmpl-fake-2'))
    assert.equal(lines.at(-1)?.type, 'done', 'the SDK saw the end of the stream ([DONE])')

    const { records, seen } = await since(auditFrom, seenFrom)
    assert.equal(seen.length, 1)
    assert.equal(JSON.parse(seen[0]?.body.toString('utf8') ?? '{}').stream, true)
    assertRealKeyOnly(seen)
    // An event stream: its open record before the first event, its closing record at the end.
    assert.deepEqual(records.map((x) => x.phase), ['open', 'close'])
    const r = records[1]
    assert.equal(r?.opened, records[0]?.seq)
    assert.deepEqual([r?.mode, r?.decision, r?.rule, r?.credential, r?.path, r?.status, r?.upstream_status, r?.error],
      ['forward', 'allow', 'chat-completions', 'openai-key', '/v1/chat/completions', 200, 200, null])
    assert.ok((r?.bytes_out ?? 0) > 0)
  })

  it('forward mode: a request outside the rules fails in the SDK with keyvalet\'s refusal, and nothing reaches the fake', async () => {
    const auditFrom = (await kv.audit()).length
    const seenFrom = upstream.received.length
    const { code, lines } = await runClient(['models'], forwardEnv())
    assert.equal(code, 1)
    assert.equal(lines[0]?.type, 'error')
    assert.equal(lines[0]?.status, 403)
    assert.match(String(lines[0]?.message), /no_rule_for_path/)
    const { records, seen } = await since(auditFrom, seenFrom)
    assert.equal(seen.length, 0)
    assert.deepEqual(records.map((r) => [r.mode, r.decision, r.reason, r.error, r.method, r.path, r.status, r.credential]),
      [['forward', 'deny', 'no_rule_for_path', 'policy_denied', 'GET', '/v1/models', 403, null]])
  })

  it('gateway mode: baseURL <gateway>/openai and the task key as the API key, no proxy', async () => {
    const auditFrom = (await kv.audit()).length
    const seenFrom = upstream.received.length
    const env = { PATH: process.env.PATH }
    const opts = JSON.stringify({ baseURL: `${kv.url}/openai`, apiKey: key })
    const complete = await runClient(['complete', opts], env)
    assert.equal(complete.code, 0, complete.stderr + JSON.stringify(complete.lines))
    assert.equal(complete.lines[0]?.content, 'Hello from the fake')
    const stream = await runClient(['stream', opts], env)
    assert.equal(stream.code, 0, stream.stderr + JSON.stringify(stream.lines))
    assert.deepEqual(stream.lines.filter((l) => l.type === 'chunk').map((c) => c.content), [...STREAM_PIECES, null])
    assert.equal(stream.lines.at(-1)?.type, 'done')

    const { records, seen } = await since(auditFrom, seenFrom)
    assert.deepEqual(seen.map((r) => `${r.method} ${r.url}`), ['POST /v1/chat/completions', 'POST /v1/chat/completions'])
    assert.equal(seen[0]?.headers.host, `${HOST}:${upstream.port}`)
    assertRealKeyOnly(seen)
    assert.deepEqual(records.map((r) => [r.phase ?? null, r.mode, r.decision, r.rule, r.credential, r.path, r.status, r.upstream_status]), [
      [null, 'gateway', 'allow', 'chat-completions', 'openai-key', '/v1/chat/completions', 200, 200],
      ['open', 'gateway', 'allow', 'chat-completions', 'openai-key', '/v1/chat/completions', 200, 200],
      ['close', 'gateway', 'allow', 'chat-completions', 'openai-key', '/v1/chat/completions', 200, 200],
    ])
    const log = JSON.stringify(await kv.audit())
    assert.ok(!log.includes(REAL_KEY) && !log.includes(key) && !log.includes(PLACEHOLDER), 'no key of any kind in the audit log')
  })
})
