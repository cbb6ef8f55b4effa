import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { AuditRecord, DecidedOn } from '../audit/record.ts'
import { parseConfig } from '../config/load.ts'
import { Replay } from './replay.ts'

const config = parseConfig(`version: 1
connectors:
  gh:
    upstream: https://api.github.com
    rules:
      - { id: search, methods: [GET], path: /search, severity: read, allow_other_query: false, query: { q: { required: true } } }
      - { id: labels, methods: [PUT], path: "/labels", severity: write, headers: { x-api-key: { pattern: "k_[a-z]+" }, x-reason: { pattern: "[a-z]+" } } }
`, '/tmp/replay-test.yaml')

function record(over: Partial<AuditRecord> & { decided_on?: DecidedOn }): AuditRecord {
  return {
    seq: 1, time: '2026-12-06T00:00:00.000Z', prev: '', hash: '', request_id: 'r', mode: 'gateway', session: 's', agent: 'a', user: 'u', workspace: 'w', task: 't',
    connector: 'gh', method: 'GET', path: '/search', query_keys: ['q'], decision: 'allow', reason: 'rule_matched', rule: 'search', credential: null, status: 200,
    upstream_status: 200, error: null, bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 1, ...over,
  }
}
const on = (over: Partial<DecidedOn> = {}): DecidedOn => ({ grants: ['gh:write'], segments: ['search'], header_names: [], headers: {}, carries_body: false, ...over })

function replayed(records: AuditRecord[]) {
  const replay = new Replay(config.policy)
  for (const r of records) replay.add(r)
  return replay.report
}

describe('replay: what cannot be decided again exactly is counted by reason, never guessed', () => {
  it('replays names-only query checks; refuses to guess over cut names, unrecorded header values, MCP and old records', () => {
    const report = replayed([
      record({ decided_on: on() }),
      record({ query_keys: [], decision: 'deny', reason: 'query_not_allowed', decided_on: on() }),
      record({ query_keys: ['q', 'x'.repeat(64)], decided_on: on() }),
      record({ method: 'PUT', path: '/labels', rule: 'labels', decided_on: on({ segments: ['labels'], header_names: ['x-api-key', 'x-reason'], headers: { 'x-api-key': null, 'x-reason': 'ok' } }) }),
      record({ method: 'PUT', path: '/labels', rule: 'labels', decided_on: on({ segments: ['labels'], header_names: ['x-reason'], headers: { 'x-reason': 'ok' } }) }),
      record({ method: 'PUT', path: '/labels', decision: 'deny', reason: 'header_not_allowed', rule: 'labels', decided_on: on({ segments: ['labels'], header_names: ['x-reason'], headers: { 'x-reason': 'NO' } }) }),
      record({ mcp: [{ method: 'tools/call', tool: 'x', decision: 'allow', reason: 'rule_matched', rule: 'x' }], decided_on: on() }),
      record({}),
      record({ decision: 'deny', reason: 'task_key_unknown', rule: null, status: 401 }),
      record({ mode: 'admin' }),
      record({ phase: 'open', decided_on: on() }),
      record({ method: 'PUT', path: '/labels', rule: 'labels', decided_on: on({ segments: ['labels'], header_names: ['x-reason'], header_names_cut: true, headers: { 'x-reason': 'ok' } }) }),
      record({ decided_on: on({ header_names: ['a'], header_names_cut: true }) }),
    ])
    assert.deepEqual(report.not_replayable.reasons, { query_names_cut: 1, header_value: 1, mcp: 1, recorded_before_replay: 1, header_names_cut: 1 })
    assert.equal(report.not_decided_by_policy, 1)
    assert.equal(report.records, 11, 'admin records and open records are not requests to replay')
    assert.deepEqual([report.replayed, report.unchanged], [5, 5], 'cut header names do not matter to a rule that names no header')
  })

  it('a connector the new configuration lacks refuses what it allowed', () => {
    const report = replayed([record({ connector: 'gone', decided_on: on() })])
    assert.equal(report.changes.allowed_to_denied.count, 1)
    assert.deepEqual(report.changes.allowed_to_denied.examples[0]?.after, { decision: 'deny', reason: 'connector_unknown', rule: null })
  })
})
