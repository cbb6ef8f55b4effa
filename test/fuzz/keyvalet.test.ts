/**
 * Fuzzing a running keyvalet end to end: seeded random requests (methods, paths, queries, headers,
 * JSON-ish bodies, chunked or not; gateway and forward listeners) written byte for byte on their
 * own connections. Whatever arrives, the answer is never 500 internal_error, and every answer has
 * exactly one audit record. FUZZ_SEED=<n> reproduces or explores; a failure names its seed and case.
 */

import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { fuzzSeed, headerish, jsonishBody, pathish, random, type Random } from '../helpers/fuzz.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SEED = fuzzSeed(20_251_118)
const CASES = 300

/** Writes one request on its own connection and reads the answer until keyvalet closes (bounded). */
function exchange(port: number, request: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('no answer within 10 s'))
    }, 10_000)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
    socket.on('error', () => undefined) // a reset after the answer still ends in 'close'
  })
}

describe('fuzz: a running keyvalet answers every request with a stable code and one audit record', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let key: string

  before(async () => {
    upstream = await startUpstream()
    // Every refusal here comes from one address: lift the anonymous record budget (tested in
    // refusal-records.test.ts) so that each request must have its one record.
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
limits: { anonymous_records_per_source_per_minute: 100000, anonymous_records_per_minute: 100000 }
connectors:
  api:
    upstream: ${upstream.url}/base
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-token, inject: bearer }
    placeholder: placeholder-for-the-sandbox
    rules:
      - { id: read, methods: [GET, HEAD], path: [/repos/acme/app, /repos/acme/app/**], severity: read,
          query: { state: { pattern: "open|closed" } }, headers: { accept: { pattern: "application/json" } } }
      - { id: create, methods: [POST, PUT], path: /repos/acme/app/issues, severity: write,
          body: { type: object, required: [title], properties: { title: { type: string, maxLength: 100 } } } }
      - { id: search, methods: [GET, DELETE], path: /search, severity: read, allow_body: true }
  ai:
    upstream: ${upstream.url}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: api-token, inject: header, header: x-api-key }
    attribution: { body_field: [user, metadata.user_id], header: x-user-id }
    rules:
      - { id: chat, methods: [POST, GET], path: /v1/chat/**, severity: write, allow_body: true }
`)
    await kv.setSecret('api-token', 'real-secret-value-for-fuzzing')
    key = (await kv.mintKey(['api:write', 'ai:write'])).key
  })
  after(async () => {
    await kv.close()
    await upstream.close()
  })

  /** Half the corpus is tidy (a method and path some rule takes, few odd headers) so that it gets past the decision too. */
  function request(r: Random): { listener: 'gateway' | 'forward'; bytes: Buffer } {
    const tidy = r.chance(0.5)
    const listener = r.chance(0.75) ? 'gateway' : 'forward'
    const connector = tidy ? r.pick(['api', 'ai']) : r.pick(['api', 'ai', 'nope'])
    const [base, methods] = connector === 'ai' ? ['/v1/chat/completions', ['POST', 'GET']] : r.pick([['/repos/acme/app', ['GET', 'HEAD']], ['/repos/acme/app/issues', ['POST', 'PUT']], ['/search', ['GET', 'DELETE']], ['', ['GET']]] as const)
    const path = `${base}${r.chance(tidy ? 0 : 0.4) ? pathish(r) : ''}`.replace(/^(?!\/)/, '/')
    const query = r.chance(tidy ? 0.1 : 0.3) ? `?${tidy ? 'state=open' : r.pick(['state=open', 'state=x', 'q=1', '%zz', '=&&=', `k=${key}`, 'a=placeholder-for-the-sandbox'])}` : ''
    const origin = connector === 'ai' ? upstream.url : `${upstream.url}/base`
    const target = listener === 'gateway' ? `/${connector}${path}${query}` : connector === 'nope' ? `http://nope.invalid${path}${query}` : `${origin}${path}${query}`
    const method = tidy ? r.pick(methods) : r.pick(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'BREW', 'get'])
    const credential = tidy || r.chance(0.85) ? key : r.pick(['', 'kvt_garbage', 'placeholder-for-the-sandbox', `${key}x`])
    const lines = [`${method} ${target} HTTP/1.1`, `Host: ${listener === 'gateway' ? 'keyvalet' : new URL(target.startsWith('http') ? target : 'http://x').host}`]
    if (listener === 'gateway') lines.push(connector === 'ai' ? `X-Api-Key: ${credential}` : `Authorization: Bearer ${credential}`)
    else lines.push(`Proxy-Authorization: Basic ${Buffer.from(`task:${credential}`).toString('base64')}`)
    for (const [name, value] of headerish(r)) if (name !== 'connection' && !(tidy && r.chance(0.8))) lines.push(`${name}: ${value}`)
    if (tidy && method !== 'GET' && method !== 'HEAD') lines.push('Content-Type: application/json')
    let body: Buffer = Buffer.alloc(0)
    if (tidy ? method !== 'GET' && method !== 'HEAD' : r.chance(0.6)) {
      body = tidy && r.chance(0.5) ? Buffer.from(r.pick(['{"title":"bug"}', '{"model":"m","user":"alice"}', '{"title":"x","metadata":{}}'])) : jsonishBody(r)
      if (r.chance(0.2)) {
        lines.push('Transfer-Encoding: chunked')
        const chunk = body.length === 0 ? [] : [Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]
        body = Buffer.concat([...chunk, Buffer.from('0\r\n\r\n')])
      } else {
        lines.push(`Content-Length: ${body.length}`)
      }
    }
    lines.push('Connection: close', '', '')
    return { listener, bytes: Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]) }
  }

  it(`${CASES} requests (seed ${SEED}): never 500 internal_error, always one audit record`, async () => {
    const r = random(SEED)
    const ports = { gateway: Number(new URL(kv.url).port), forward: Number(new URL(kv.forwardUrl ?? '').port) }
    const statuses = new Map<number, number>()
    for (let i = 0; i < CASES; i++) {
      const { listener, bytes } = request(r)
      const where = `seed ${SEED}, case ${i}, ${listener}, request ${JSON.stringify(bytes.subarray(0, 600).toString('latin1'))}`
      const audited = (await kv.audit()).length
      const answer = await exchange(ports[listener], bytes)
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1])
      assert.ok(Number.isInteger(status), `${where}: no HTTP answer: ${JSON.stringify(answer.slice(0, 200))}`)
      assert.notEqual(status, 500, `${where}: ${answer.slice(0, 600)}`)
      assert.ok(!answer.includes('internal_error'), `${where}: ${answer.slice(0, 600)}`)
      const records = (await kv.audit()).slice(audited)
      assert.equal(records.length, 1, `${where}: ${records.length} audit records for answer ${answer.slice(0, 300)}`)
      assert.equal(records[0]?.status, status, `${where}: the record has the status answered`)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    }
    // The corpus reaches both refusals and the upstream, or it tests nothing.
    assert.ok((statuses.get(200) ?? 0) > 10 && (statuses.get(400) ?? 0) > 10 && (statuses.get(403) ?? 0) > 10, JSON.stringify([...statuses]))
  })
})
