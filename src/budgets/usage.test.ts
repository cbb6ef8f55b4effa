import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { priceOf, UsageMeter } from './usage.ts'

const PRICES = { prices: new Map([['gpt-4o', { input: 2.5, output: 10 }], ['gpt-4o-mini', { input: 0.15, output: 0.6 }]]) }

/** Feeds `text` to a meter in pieces of `size` bytes (UTF-8 split anywhere). */
function meter(text: string, eventStream: boolean, size: number) {
  const m = new UsageMeter(eventStream)
  const bytes = Buffer.from(text)
  for (let i = 0; i < bytes.length; i += size) m.push(bytes.subarray(i, i + size))
  return m.end(PRICES)
}

const ANTHROPIC_STREAM = [
  'event: message_start\r\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":20,"cache_creation_input_tokens":7,"output_tokens":1}}}\r\n\r\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"héllo ✓"}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
].join('')

describe('UsageMeter', () => {
  it('reads an event stream the same in chunks of every size (lines carried across chunks)', () => {
    for (const size of [1, 2, 3, 7, 64, 100_000]) {
      assert.deepEqual(meter(ANTHROPIC_STREAM, true, size), { model: 'claude-x', inputTokens: 27, outputTokens: 15, cost: Math.round(27 * 2.5 + 15 * 10) }, `size ${size}`)
    }
  })

  it('reads a JSON answer once whole, and reports nothing for an answer without usage or not JSON', () => {
    assert.deepEqual(meter('{"model":"gpt-4o-mini-2024","usage":{"prompt_tokens":1000,"completion_tokens":100}}', false, 5), { model: 'gpt-4o-mini-2024', inputTokens: 1000, outputTokens: 100, cost: 210 })
    assert.equal(meter('{"error":{"message":"nope"}}', false, 3), undefined)
    assert.equal(meter('data: not json\n\n', true, 3), undefined)
    assert.equal(meter('<html>', false, 3), undefined)
  })

  it('ignores counts that are not whole non-negative numbers', () => {
    assert.deepEqual(meter('{"usage":{"input_tokens":-5,"output_tokens":"9"}}', false, 100), { model: undefined, inputTokens: 0, outputTokens: 0, cost: 0 })
  })
})

describe('priceOf', () => {
  it('takes the longest configured prefix of the model, and the highest prices for a model none fits', () => {
    assert.deepEqual(priceOf(PRICES.prices, 'gpt-4o-mini-2024-07-18'), { input: 0.15, output: 0.6 })
    assert.deepEqual(priceOf(PRICES.prices, 'gpt-4o-2024'), { input: 2.5, output: 10 })
    assert.deepEqual(priceOf(PRICES.prices, 'o3'), { input: 2.5, output: 10 })
    assert.deepEqual(priceOf(PRICES.prices, undefined), { input: 2.5, output: 10 })
    assert.equal(priceOf(new Map(), 'gpt-4o'), undefined)
  })
})
