import assert from 'node:assert/strict'
import { it } from 'node:test'
import { request } from 'undici'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

it('finishes a request in flight when it shuts down, and accepts no new ones', async () => {
  const upstream = await startUpstream({ handler: (_req, res) => setTimeout(() => res.end('slow answer'), 300) })
  const kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  slow:
    upstream: ${upstream.url}
    allow_insecure: true
    rules: [{ id: any, methods: [GET], path: /**, severity: read }]
`)
  try {
    const { key } = await kv.mintKey(['slow:read'])
    const inFlight = request(`${kv.url}/slow/x`, { headers: { authorization: `Bearer ${key}` } })
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(upstream.received.length, 1)
    const records = await kv.audit()
    const closing = kv.close()
    const res = await inFlight
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), 'slow answer')
    await closing
    await assert.rejects(request(`${kv.url}/slow/x`, { headers: { authorization: `Bearer ${key}` } }), /ECONNREFUSED/)
    assert.equal(records.length, 0, 'nothing was audited before the request finished')
  } finally {
    await upstream.close()
  }
})
