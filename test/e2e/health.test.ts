import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { request } from 'undici'
import { startKeyvalet } from '../helpers/keyvalet.ts'

const CONFIG = `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
connectors:
  echo:
    upstream: http://127.0.0.1:9
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules:
      - { id: any, methods: [GET], path: /**, severity: read }
`

async function probe(url: string): Promise<{ status: number; body: { status: string; checks?: Record<string, string>; failing?: string[] } }> {
  const res = await request(url)
  return { status: res.statusCode, body: (await res.body.json()) as { status: string; checks?: Record<string, string>; failing?: string[] } }
}

describe('/healthz and /readyz on the admin listener', () => {
  it('answers without a token, is not audited, and names each check that fails as parts go down', async () => {
    const kv = await startKeyvalet(CONFIG, { admin: {} })
    const closed: string[] = []
    try {
      const auditBefore = (await kv.audit()).length
      assert.deepEqual(await probe(`${kv.adminUrl}/healthz`), { status: 200, body: { status: 'alive' } })
      const ready = await probe(`${kv.adminUrl}/readyz`)
      assert.deepEqual(ready, { status: 200, body: { status: 'ready', checks: { store: 'ok', master_key: 'ok', config: 'ok', audit: 'ok', listeners: 'ok' }, failing: [] } })
      assert.equal((await kv.audit()).length, auditBefore, 'probes write no audit record')

      // The audit engine stops (as if its thread died): keyvalet refuses new requests, and is not ready.
      await kv.auditWriter.terminate()
      const noAudit = await probe(`${kv.adminUrl}/readyz`)
      assert.equal(noAudit.status, 503)
      assert.deepEqual(noAudit.body.failing, ['audit'])
      assert.match(String(noAudit.body.checks?.audit), /cannot write/)

      // The data-plane listeners close.
      await kv.proxy.close(0)
      closed.push('proxy')
      assert.deepEqual((await probe(`${kv.adminUrl}/readyz`)).body.failing, ['audit', 'listeners'])

      // The store goes away: no read answers, and the master key cannot be shown to open the vault.
      await kv.runtime.store.close()
      closed.push('store')
      const noStore = await probe(`${kv.adminUrl}/readyz`)
      assert.equal(noStore.status, 503)
      assert.deepEqual(noStore.body.failing, ['store', 'master_key', 'audit', 'listeners'])
      assert.equal((await probe(`${kv.adminUrl}/healthz`)).status, 200, 'still alive')
    } finally {
      // What the test already closed cannot be closed twice.
      await kv.close().catch((err: unknown) => { if (closed.length === 0) throw err })
    }
  })
})
