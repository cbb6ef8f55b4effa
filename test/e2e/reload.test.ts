import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { it } from 'node:test'
import { request } from 'undici'
import type { AuditRecord } from '../../src/audit/record.ts'
import type { ReloadResult } from '../../src/config/reload.ts'
import { startKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream } from '../helpers/upstream.ts'

/** A config whose one connector allows GET below /<allowed>/ only. */
function configAllowing(upstreamUrl: string, allowed: 'a' | 'b', listen = '127.0.0.1:0'): string {
  return `version: 1
listen: { gateway: "${listen}" }
connectors:
  up:
    upstream: ${upstreamUrl}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read-${allowed}, methods: [GET], path: /${allowed}/**, severity: read }]
`
}

const BROKEN = `version: 1
connectors:
  up: { upstream: "not a url", rules: [{ id: x, methods: [GET], path: /**, severity: nope }] }
`

it('reloads under load: every request is decided, answered and audited under the one version it started with', async () => {
  const upstream = await startUpstream()
  const kv = await startKeyvalet(configAllowing(upstream.url, 'a'))
  try {
    const { key } = await kv.mintKey(['up:read'])
    const versionA = kv.live.current.version
    writeFileSync(kv.configFile, configAllowing(upstream.url, 'b'))
    const versionB = (await kv.live.reload('admin')).version
    assert.notEqual(versionA, versionB)

    const CLIENTS = 4
    const PER_CLIENT = 500
    const TOTAL = CLIENTS * PER_CLIENT
    const answers: { path: string; status: number; error: string | undefined; id: string }[] = []
    const client = async (c: number): Promise<void> => {
      for (let i = 0; i < PER_CLIENT; i++) {
        const path = (i + c) % 2 === 0 ? '/a/x' : '/b/x'
        const res = await request(`${kv.url}/up${path}`, { headers: { authorization: `Bearer ${key}` } })
        await res.body.dump()
        answers.push({ path, status: res.statusCode, error: res.headers['x-keyvalet-error'] as string | undefined, id: String(res.headers['x-keyvalet-request-id']) })
      }
    }
    // 20 reloads spread over the load, cycling: config A, a broken file, config B.
    const cycle = [configAllowing(upstream.url, 'a'), BROKEN, configAllowing(upstream.url, 'b')]
    const results: ReloadResult[] = []
    const reloads = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) {
        for (let wait = 0; wait < 2000 && answers.length < ((i + 1) * TOTAL) / 22; wait++) await new Promise((r) => setTimeout(r, 5))
        writeFileSync(kv.configFile, cycle[i % 3] as string)
        results.push(await kv.live.reload('admin'))
      }
    }
    await Promise.all([...Array.from({ length: CLIENTS }, (_, c) => client(c)), reloads()])

    assert.equal(answers.length, TOTAL)
    assert.equal(results.length, 20)
    assert.deepEqual(results.map((r) => r.result), Array.from({ length: 20 }, (_, i) => (i % 3 === 1 ? 'failed' : 'applied')))
    for (const r of results) {
      if (r.result === 'failed') assert.equal(r.error.code, 'config_invalid')
      else assert.ok([versionA, versionB].includes(r.version))
    }
    assert.equal(kv.live.current.version, versionA, 'the last good file (reload 19) stays in force after the broken one (reload 20)')

    const records = new Map((await kv.audit()).filter((r) => r.phase !== 'open').map((r) => [r.request_id, r] as const))
    const seen = new Set<string>()
    for (const answer of answers) {
      const record = records.get(answer.id) as AuditRecord
      assert.ok(record !== undefined, `request ${answer.id} has its audit record`)
      assert.ok(record.config_version === versionA || record.config_version === versionB, `record ${record.seq} names a version`)
      seen.add(record.config_version)
      // What that version decides: A allows /a/ only, B allows /b/ only; nothing else may happen.
      const allowedUnder = record.config_version === versionA ? '/a/x' : '/b/x'
      if (answer.path === allowedUnder) {
        assert.deepEqual([answer.status, answer.error, record.decision, record.rule], [200, undefined, 'allow', `read-${answer.path[1]}`])
      } else {
        assert.deepEqual([answer.status, answer.error, record.decision, record.reason], [403, 'policy_denied', 'deny', 'no_rule_for_path'])
      }
      assert.equal(record.status, answer.status)
    }
    assert.deepEqual(seen, new Set([versionA, versionB]), 'both versions decided requests')
    const allowed = answers.filter((a) => a.status === 200).length
    assert.equal(upstream.received.length, allowed, 'the upstream received exactly the allowed requests')
    assert.ok(upstream.received.every((r) => r.url.startsWith('/a/') || r.url.startsWith('/b/')))
  } finally {
    await kv.close()
    await upstream.close()
  }
})

it('lets a request in flight finish under the version it started with', async () => {
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const upstream = await startUpstream({ handler: (_req, res) => void held.then(() => res.end('late')) })
  const kv = await startKeyvalet(configAllowing(upstream.url, 'a'))
  try {
    const { key } = await kv.mintKey(['up:read'])
    const versionA = kv.live.current.version
    const slow = request(`${kv.url}/up/a/slow`, { headers: { authorization: `Bearer ${key}` } })
    for (let i = 0; i < 400 && upstream.received.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    assert.equal(upstream.received.length, 1)
    writeFileSync(kv.configFile, configAllowing(upstream.url, 'b'))
    const reloaded = await kv.live.reload('admin')
    assert.equal(reloaded.result, 'applied')
    // A new request is decided under B at once; the one in flight still finishes under A.
    const after = await request(`${kv.url}/up/a/now`, { headers: { authorization: `Bearer ${key}` } })
    await after.body.dump()
    assert.equal(after.statusCode, 403)
    release()
    const res = await slow
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), 'late')
    const records = (await kv.audit()).filter((r) => r.phase !== 'open')
    assert.deepEqual(records.map((r) => [r.path, r.decision, r.config_version]), [
      ['/a/now', 'deny', reloaded.version],
      ['/a/slow', 'allow', versionA],
    ])
    assert.equal(upstream.received.length, 1)
  } finally {
    release()
    await kv.close()
    await upstream.close()
  }
})

it('refuses a reload that changes what only a restart can, and keeps the configuration in force', async () => {
  const upstream = await startUpstream()
  const kv = await startKeyvalet(configAllowing(upstream.url, 'a'))
  try {
    const before = kv.live.current
    // sessions.max_ttl too: the session service was built with it (a reload that said "applied" would not apply it).
    writeFileSync(kv.configFile, configAllowing(upstream.url, 'b', '127.0.0.1:1') + 'data_dir: ./elsewhere\nsessions: { max_ttl: 1d }\n')
    const result = await kv.live.reload('admin')
    assert.equal(result.result, 'failed')
    assert.equal(result.result === 'failed' ? result.error.code : '', 'config_reload_refused')
    assert.deepEqual(result.result === 'failed' ? result.error.detail?.fields : [], ['data_dir', 'listen.gateway', 'sessions.max_ttl'])
    assert.match(result.result === 'failed' ? result.error.message : '', /cannot change data_dir, listen\.gateway, sessions\.max_ttl .*restart/)
    assert.equal(kv.live.current, before)
    const { key } = await kv.mintKey(['up:read'])
    const res = await request(`${kv.url}/up/a/x`, { headers: { authorization: `Bearer ${key}` } })
    await res.body.dump()
    assert.equal(res.statusCode, 200, 'still decided under the configuration in force (A)')
    assert.equal((await kv.audit()).at(-1)?.config_version, before.version)
    assert.deepEqual(kv.live.counts, { applied: 0, unchanged: 0, failed: 1 })
  } finally {
    await kv.close()
    await upstream.close()
  }
})
