import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MaskPatterns } from '../redact/patterns.ts'
import { maskRecord, WRITTEN_BY_KEYVALET } from './mask.ts'
import type { AuditFields } from './record.ts'

const SECRET = 'sk-live-0123456789abcdefXYZ'

/** A record with every member AuditFields has, each string of it a placeholder. */
function fullRecord(): AuditFields {
  return {
    request_id: 'req_1', mode: 'gateway', session: 'ses_0123456789abcdef', agent: 'agent-1', user: 'alice', workspace: 'acme', task: 'task-1',
    connector: 'github', method: 'GET', path: '/repos/acme/app', query_keys: ['q', 'page'], decision: 'allow', reason: 'rule_matched', rule: 'read',
    credential: 'github-token', status: 200, upstream_status: 200, error: 'upstream_failed', bytes_in: 0, bytes_out: 10, redactions: 0, latency_ms: 1.5,
    trace_id: '95fbd98bacb9f2b4d79c62db9ce43b11', config_version: 'cfg_379180edf2be9003', phase: 'close', opened: 3,
    mcp: [{ method: 'tools/call', tool: 'search', prompt: 'p', uri: 'file:///x', arguments_digest: 'sha256:00', decision: 'allow', reason: 'rule_matched', rule: 'mcp-read' }],
    decided_on: {
      grants: ['github:read'], segments: ['repos', 'acme'], header_names: ['accept'], headers: { 'x-kind': 'value' }, carries_body: true, upgrade: 'websocket',
      body_digest: 'sha256:00', body_fields: { '/title': { type: 'string', keys: ['a'], value: 'title' }, '/nested': { type: 'object', value: { deep: ['x'] } } },
    },
    approval: { id: 'apr_1', decision: 'approved', approver: { id: 'adm_1', name: 'bob' }, reason: 'fine', wait_ms: 5, digest: 'sha256:00', remembered: false },
    detail: { why: 'upstream said no', nested: { list: ['a', { b: 'c' }] } },
    actor: { id: 'adm_1', name: 'bob' }, action: 'session.create', target: { name: 'x', ids: ['y'] },
  }
}

/** Every string in the record, by its path of keys and indexes. */
function stringPaths(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value === 'string') return [path]
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([k, v]) => stringPaths(v, [...path, Array.isArray(value) ? Number(k) : k]))
}

function withString(record: AuditFields, path: (string | number)[], text: string): AuditFields {
  const copy = structuredClone(record) as unknown as Record<string | number, unknown>
  let at = copy
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>
  at[path.at(-1) as string | number] = text
  return copy as unknown as AuditFields
}

function stringAt(record: AuditFields, path: (string | number)[]): string {
  let at: unknown = record
  for (const key of path) at = (at as Record<string | number, unknown>)[key]
  return at as string
}

describe('maskRecord', () => {
  const mask = MaskPatterns.of([SECRET])
  const paths = stringPaths(fullRecord())

  it('masks a vault value in every field a client, an upstream or the configuration can fill, in each form it may take', () => {
    const searched = paths.filter((p) => !WRITTEN_BY_KEYVALET.has(String(p[0])))
    assert.ok(searched.length > 40, `searched ${searched.length} strings`)
    const forms = [SECRET, `Bearer ${SECRET}`, encodeURIComponent(`a b/${SECRET}`).replaceAll('-', '%2D'), Buffer.from(`{"token":"${SECRET}"}`).toString('base64'), `\\u0073${SECRET.slice(1)}`, `cut short: ${SECRET.slice(0, 10)}`]
    for (const path of searched) {
      for (const form of forms) {
        const masked = maskRecord(withString(fullRecord(), path, form), mask)
        const text = stringAt(masked, path)
        assert.notEqual(text, form, `${path.join('.')} holding ${form}`)
        assert.ok(!text.includes(SECRET.slice(0, 10)), `${path.join('.')}: ${text}`)
        assert.ok(!JSON.stringify(masked).includes(SECRET.slice(3, 12)), path.join('.'))
      }
    }
  })

  it('leaves the fields keyvalet writes from a closed set or generates as they are, and only those', () => {
    assert.deepEqual([...WRITTEN_BY_KEYVALET].sort(), ['config_version', 'decision', 'error', 'mode', 'phase', 'request_id', 'session'])
    for (const name of WRITTEN_BY_KEYVALET) {
      const record = withString(fullRecord(), [name], SECRET)
      assert.equal(stringAt(maskRecord(record, mask), [name]), SECRET)
    }
  })

  it('masks a value shorter than CUT_AT whole, and leaves a short piece of a long one', () => {
    const short = MaskPatterns.of(['k3y!'])
    const masked = maskRecord({ ...fullRecord(), user: 'k3y!', agent: 'x k3y!', task: 'k3y' }, short)
    assert.notEqual(masked.user, 'k3y!')
    assert.notEqual(masked.agent, 'x k3y!')
    assert.equal(masked.task, 'k3y')
    assert.equal(maskRecord({ ...fullRecord(), user: SECRET.slice(0, 7) }, mask).user, SECRET.slice(0, 7))
    assert.notEqual(maskRecord({ ...fullRecord(), user: `é${SECRET.slice(0, 8)}` }, mask).user, `é${SECRET.slice(0, 8)}`)
  })

  it('returns the record itself when nothing is masked', () => {
    const record = fullRecord()
    assert.equal(maskRecord(record, mask), record)
    assert.equal(maskRecord(record, MaskPatterns.of([])), record)
  })
})
