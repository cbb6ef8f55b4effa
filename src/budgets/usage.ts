import type { TokenPrice, UsageOptions } from '../model/budget.ts'

/** The token usage a model provider reported for one response, and what it cost. */
export interface ModelUsage {
  readonly model: string | undefined
  /** Prompt tokens, cache reads and writes included. */
  readonly inputTokens: number
  readonly outputTokens: number
  /** In millionths of the prices' currency (COST_UNITS_PER_CURRENCY); 0 without prices. */
  readonly cost: number
}

/** A JSON answer is held up to this size to be parsed at its end; past it, its usage is not read. */
const MAX_JSON_BYTES = 8 * 1024 * 1024
/** A server-sent event line longer than this is skipped (usage events are a few hundred bytes). */
const MAX_LINE_BYTES = 1024 * 1024

/**
 * Reads the `usage` a model provider reports, from the response body as it passes (never holding
 * it back): OpenAI chat completions (`usage.prompt_tokens`, `completion_tokens`), OpenAI responses
 * (`usage.input_tokens`, `output_tokens`, in `response.completed` when streamed) and Anthropic
 * messages (`usage.input_tokens` + cache tokens, `output_tokens`; streamed, `message_start` then
 * cumulative `message_delta`). A JSON body is parsed once whole; an event stream line by line, only
 * the line under way kept. Each count is the largest any event reported, which is the total in all
 * three formats.
 */
export class UsageMeter {
  readonly #eventStream: boolean
  #chunks: Buffer[] = []
  #size = 0
  #line: Buffer[] = []
  #lineSize = 0
  #model: string | undefined
  #input = 0
  #output = 0
  #seen = false

  constructor(eventStream: boolean) {
    this.#eventStream = eventStream
  }

  push(chunk: Buffer): void {
    if (!this.#eventStream) {
      this.#size += chunk.length
      if (this.#size <= MAX_JSON_BYTES) this.#chunks.push(chunk)
      else this.#chunks = []
      return
    }
    let start = 0
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.#addToLine(chunk.subarray(start, nl))
      this.#endLine()
      start = nl + 1
    }
    this.#addToLine(chunk.subarray(start))
  }

  /** What the whole body reported, priced; undefined when it reported no usage. */
  end(options: UsageOptions): ModelUsage | undefined {
    if (this.#eventStream) this.#endLine()
    else if (this.#size <= MAX_JSON_BYTES) this.#observeText(Buffer.concat(this.#chunks).toString('utf8'))
    this.#chunks = []
    if (!this.#seen) return undefined
    const price = priceOf(options.prices, this.#model)
    const cost = price === undefined ? 0 : Math.round(this.#input * price.input + this.#output * price.output)
    return { model: this.#model, inputTokens: this.#input, outputTokens: this.#output, cost }
  }

  #addToLine(part: Buffer): void {
    if (part.length === 0) return
    this.#lineSize += part.length
    if (this.#lineSize <= MAX_LINE_BYTES) this.#line.push(part)
  }

  #endLine(): void {
    const size = this.#lineSize
    const line = this.#line
    this.#line = []
    this.#lineSize = 0
    if (size === 0 || size > MAX_LINE_BYTES) return
    const text = Buffer.concat(line, size).toString('utf8')
    if (text.startsWith('data:')) this.#observeText(text.slice(5))
  }

  #observeText(text: string): void {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return
    }
    if (!isObject(value)) return
    // The usage is on the answer itself (JSON, OpenAI chat chunks, Anthropic message_delta), or on
    // the object an event carries (OpenAI responses: `response`; Anthropic message_start: `message`).
    for (const holder of [value, value.response, value.message]) {
      if (!isObject(holder)) continue
      if (typeof holder.model === 'string' && holder.model !== '') this.#model = holder.model.slice(0, 128)
      if (isObject(holder.usage)) this.#observeUsage(holder.usage)
    }
  }

  #observeUsage(usage: Record<string, unknown>): void {
    const input = (count(usage.prompt_tokens) ?? count(usage.input_tokens) ?? 0) + (count(usage.cache_creation_input_tokens) ?? 0) + (count(usage.cache_read_input_tokens) ?? 0)
    const output = count(usage.completion_tokens) ?? count(usage.output_tokens) ?? 0
    this.#seen = true
    this.#input = Math.max(this.#input, input)
    this.#output = Math.max(this.#output, output)
  }
}

/** The price of the longest configured name the model starts with; for a model none fits, the highest prices given. */
export function priceOf(prices: ReadonlyMap<string, TokenPrice>, model: string | undefined): TokenPrice | undefined {
  if (prices.size === 0) return undefined
  let best: string | undefined
  for (const name of prices.keys()) if (model?.startsWith(name) === true && (best === undefined || name.length > best.length)) best = name
  if (best !== undefined) return prices.get(best)
  const all = [...prices.values()]
  return { input: Math.max(...all.map((p) => p.input)), output: Math.max(...all.map((p) => p.output)) }
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
