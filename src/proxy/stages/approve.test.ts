import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { requestDigest } from '../../approvals/digest.ts'
import { parseConfig } from '../../config/load.ts'
import { KeyvaletError } from '../../errors.ts'
import type { AdmittedContext, OutboundContext } from '../context.ts'
import { traceOf } from '../trace.ts'
import { approvedRequest, createApprovedCheck } from './approve.ts'
import { createInject } from './inject.ts'

const config = parseConfig(`version: 1
connectors:
  api:
    upstream: https://api.example.com/v1
    credential: { secret: api-key, inject: query, param: key }
    rules:
      - { id: post, methods: [POST], path: /items, severity: write, approval: {} }
`, 'keyvalet.yaml')
const connector = config.policy.connectors.get('api')!

/** An admitted request as route leaves it; `req` carries only what inject reads of it (method, headers). */
function admittedWith(body: Buffer): AdmittedContext {
  const req = { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length), 'x-note': 'a', authorization: 'Bearer kvt_x' } } as unknown as IncomingMessage
  return {
    id: 'req_1', mode: 'gateway', req, started: 0n, trace: traceOf(undefined), bytesIn: 0, bytesOut: 0, redactions: 0, body,
    session: { id: 'ses_0000000000000001', agent: 'a', user: 'u', workspace: 'w', task: 't', grants: [], createdAt: 0, expiresAt: 1, revokedAt: undefined },
    connector, segments: ['items'], path: '/v1/items', rawQuery: 'q=1&key=kvt_sandbox',
  }
}

describe('the check before forward of an approved request', () => {
  const check = createApprovedCheck(connector)
  const approvedAndInjected = (body: Buffer): OutboundContext => {
    const ctx = admittedWith(body)
    const digest = requestDigest(approvedRequest(ctx))
    ctx.approval = { id: 'apr_0000000000000001', state: 'approved', approver: { id: 'kat_1', name: 'alice' }, reason: undefined, waitedMs: 1, digest, remembered: false }
    ctx.credential = { label: 'api-key', value: 'real-secret', mask: undefined as never, token: undefined as never, source: undefined as never }
    createInject().run(ctx)
    return ctx as OutboundContext
  }

  it('lets the approved request go, with the credential and traceparent keyvalet added after the yes', () => {
    const ctx = approvedAndInjected(Buffer.from('{"a":1}'))
    assert.match(ctx.outbound.query, /key=real-secret/)
    assert.ok(ctx.outbound.headers.traceparent !== undefined)
    assert.doesNotThrow(() => check.run(ctx))
  })

  it('refuses (approval_mismatch) a request whose body, a header, the method or the query changed after the approval', () => {
    const changes: ((ctx: OutboundContext) => void)[] = [
      (ctx) => { ctx.body = Buffer.from('{"a":2}') },
      (ctx) => { ctx.outbound.headers['x-note'] = 'b' },
      (ctx) => { ctx.outbound.headers['x-added'] = 'c' },
      (ctx) => { ctx.req.method = 'PUT' },
      (ctx) => { ctx.outbound.query = `${ctx.outbound.query}&more=1` },
    ]
    for (const change of changes) {
      const ctx = approvedAndInjected(Buffer.from('{"a":1}'))
      change(ctx)
      assert.throws(() => check.run(ctx), (err: unknown) => err instanceof KeyvaletError && err.code === 'approval_mismatch')
    }
  })
})
