/**
 * `node bench/redact.ts`: the response redactor alone, in this process. Reports, for a few kinds
 * of body and a growing number of masked values, the throughput in 16 KiB chunks and how many
 * chunks were copied; and the cost of compiling a value's forms (a static secret is compiled
 * once per value, a signed assertion once per request).
 */

import { randomBytes } from 'node:crypto'
import { MaskPatterns } from '../src/redact/patterns.ts'
import { Redactor } from '../src/redact/redactor.ts'

const CHUNK = 16 * 1024
const bodies: Record<string, Buffer> = {
  'JSON with escapes': Buffer.from(Array.from({ length: 40_000 }, (_, i) => `{"id":${i},"url":"https:\\/\\/example.com\\/a%2Fb?x=1&y=2","data":"${randomBytes(12).toString('base64')}"}`).join('\n')),
  'base64 blob': Buffer.from(randomBytes(3_000_000).toString('base64')),
  'SSE tokens': Buffer.from(Array.from({ length: 100_000 }, (_, i) => `data: {"delta":"word${i % 97} "}\n\n`).join('')),
}

function throughput(patterns: MaskPatterns, body: Buffer): { mbps: number; copied: number } {
  let best = 0
  let copied = 0
  for (let round = 0; round < 5; round++) {
    const redactor = new Redactor(patterns)
    let chunk: Buffer = body
    copied = 0
    const started = performance.now()
    for (let at = 0; at < body.length; at += CHUNK) {
      chunk = body.subarray(at, at + CHUNK)
      redactor.push(chunk, (out) => {
        if (out.buffer !== chunk.buffer) copied++
      })
    }
    redactor.flush(() => {})
    best = Math.max(best, body.length / 1e6 / ((performance.now() - started) / 1000))
  }
  return { mbps: best, copied }
}

for (const values of [1, 4, 16]) {
  const secrets = Array.from({ length: values }, () => `sk-${randomBytes(30).toString('base64url')}`)
  const patterns = MaskPatterns.of(secrets)
  for (const [name, body] of Object.entries(bodies)) {
    const { mbps, copied } = throughput(patterns, body)
    console.log(`${String(values).padStart(2)} values, ${name.padEnd(18)} ${mbps.toFixed(0).padStart(5)} MB/s, ${copied} of ${Math.ceil(body.length / CHUNK)} chunks emitted from a copy`)
  }
}

const jwt = `${randomBytes(30).toString('base64url')}.${randomBytes(220).toString('base64url')}.${randomBytes(64).toString('base64url')}`
for (const [what, values] of [['a 40-byte secret', [`sk-${randomBytes(30).toString('base64url')}`]], [`a ${jwt.length}-byte JWT`, [jwt]]] as const) {
  let best = Infinity
  for (let round = 0; round < 5; round++) {
    const started = performance.now()
    for (let k = 0; k < 200; k++) MaskPatterns.of(values)
    best = Math.min(best, (performance.now() - started) / 200)
  }
  console.log(`compiling ${what}: ${(best * 1000).toFixed(0)} µs`)
}
