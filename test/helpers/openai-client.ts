/**
 * A sandboxed program using the official OpenAI SDK, unmodified: run as a child process by
 * test/e2e/openai-sdk.test.ts. `node openai-client.ts <complete|stream|responses-stream|models> [client options JSON] [extra request params JSON]`.
 * Without options the SDK reads OPENAI_API_KEY and OPENAI_BASE_URL from the environment itself.
 * Prints one JSON line per event: {type:'completion'|'chunk'|'done'|'models'|'error', ...}.
 */
import OpenAI from 'openai'

const mode = process.argv[2] ?? 'complete'
const options = process.argv[3] === undefined ? {} : (JSON.parse(process.argv[3]) as { baseURL?: string; apiKey?: string })
const client = new OpenAI({ ...options, maxRetries: 0, timeout: 15_000 })
const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`)
const messages = [{ role: 'user' as const, content: 'Say hello' }]
/** Extra chat-completion parameters the sandbox sets itself (e.g. `user`, `stream_options`). */
const extra = process.argv[4] === undefined ? {} : (JSON.parse(process.argv[4]) as Record<string, unknown>)

try {
  if (mode === 'complete') {
    const r = await client.chat.completions.create({ model: 'gpt-test', messages, ...extra })
    print({ type: 'completion', id: r.id, model: r.model, content: r.choices[0]?.message.content ?? null, finish: r.choices[0]?.finish_reason ?? null, usage: r.usage })
  } else if (mode === 'stream') {
    const stream = await client.chat.completions.create({ model: 'gpt-test', messages, ...extra, stream: true })
    for await (const chunk of stream) {
      print({ type: 'chunk', id: chunk.id, content: chunk.choices[0]?.delta.content ?? null, finish: chunk.choices[0]?.finish_reason ?? null, at: Date.now() })
    }
    print({ type: 'done' })
  } else if (mode === 'responses-stream') {
    const stream = await client.responses.create({ model: 'gpt-test', input: 'Say hello', stream: true })
    for await (const event of stream) print({ type: 'event', event: event.type, ...(event.type === 'response.completed' ? { usage: event.response.usage } : {}) })
    print({ type: 'done' })
  } else if (mode === 'models') {
    const page = await client.models.list()
    print({ type: 'models', ids: page.data.map((m) => m.id) })
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
} catch (err) {
  const e = err as { status?: number; message?: string; name?: string; error?: unknown }
  print({ type: 'error', name: e.name, status: e.status ?? null, message: e.message ?? String(err), error: e.error ?? null })
  process.exitCode = 1
}
