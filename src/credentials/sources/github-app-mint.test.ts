import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { Resolver } from '../../egress/resolver.ts'
import { KeyvaletError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import { auditFields } from '../../proxy/audit-fields.ts'
import { traceOf } from '../../proxy/trace.ts'
import type { RequestContext } from '../../proxy/context.ts'
import { TokenHttp } from '../token-http.ts'
import { mintInstallationToken } from './github-app-mint.ts'

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLW9mLXRoZS1hcHAtand0LTAxMjM0NTY3ODk'

describe('mintInstallationToken: a refusal whose message echoes the App JWT', () => {
  // A stand-in GitHub that refuses the mint and quotes the JWT back, base64-encoded, in its message.
  const server = createServer((req, res) => {
    const jwt = (req.headers.authorization ?? '').replace(/^Bearer /, '')
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `bad token ${Buffer.from(jwt).toString('base64')}` }))
  })
  const http = new TokenHttp({ resolver: new Resolver() })
  let apiUrl: URL
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    apiUrl = new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}`)
  })
  after(async () => {
    await http.close()
    server.close()
  })

  it('never reaches the audit record in any encoding', async () => {
    const connector: Connector = {
      name: 'github', upstream: new URL('https://api.github.com'), allowInsecure: true, ca: undefined, credential: undefined,
      placeholder: undefined, allowAddresses: ['127.0.0.1/32'], upstreamProxy: undefined, rules: [],
    }
    const err = await mintInstallationToken(http, connector, { apiUrl, appId: '123', installationId: 7, repositories: ['app'], owner: undefined, permissions: { contents: 'read' } }, JWT)
      .then(() => undefined, (e: unknown) => e)
    assert.ok(err instanceof KeyvaletError)
    assert.equal(err.code, 'credential_unavailable')
    assert.match(String(err.detail?.github_message), /^bad token /)
    const ctx = { id: 'req_1', mode: 'gateway', req: { method: 'GET', headers: {} } as IncomingMessage, started: process.hrtime.bigint(), trace: traceOf(undefined), bytesIn: 0, bytesOut: 0, redactions: 0 } satisfies RequestContext
    const record = auditFields(ctx, err, 502)
    const encoded = Buffer.from(JWT).toString('base64')
    assert.ok(!JSON.stringify(record).includes(encoded.slice(8, 40)), JSON.stringify(record.detail))
  })
})
