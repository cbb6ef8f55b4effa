import assert from 'node:assert/strict'
import type { AuditFacets, AuditFilter, AuditRepo, AuditRow, Store } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The audit part of the Store contract: the cases for each method of AuditRepo. */
export const auditCases: RepoCases<AuditRepo> = {
  append: {
    'appends a chain, passing the last row to build': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      const seen: (AuditRow | undefined)[] = []
      for (let i = 0; i < 3; i++) {
        await store.audit.append((last) => {
          seen.push(last)
          return nextRow(last)
        })
      }
      assert.equal(seen[0], undefined)
      assert.equal(seen[1]?.seq, 1)
      assert.equal(seen[2]?.hash, 'h2')
      assert.deepEqual(await store.audit.last(), { seq: 3, hash: 'h3', line: '{"n":3}' })
    },
    'rejects a row whose seq is not last.seq + 1, and appends nothing': async (store) => {
      await assert.rejects(store.audit.append(() => ({ seq: 2, hash: 'x', line: '{}' })))
      await store.audit.append(nextRow)
      await assert.rejects(store.audit.append(() => ({ seq: 1, hash: 'x', line: '{}' })))
      await assert.rejects(store.audit.append(() => ({ seq: 3, hash: 'x', line: '{}' })))
      assert.equal((await store.audit.last())?.seq, 1)
    },
    'rolls back when build throws': async (store) => {
      await assert.rejects(
        store.audit.append(() => {
          throw new Error('boom')
        }),
        /boom/,
      )
      assert.equal(await store.audit.last(), undefined)
      await store.audit.append(nextRow)
      assert.equal((await store.audit.last())?.seq, 1)
    },
  },
  appendMany: {
    'appends several rows in one transaction: all of them, or none when one is out of order': async (store) => {
      await store.audit.append(nextRow)
      const rows = await store.audit.appendMany((last) => {
      const first = nextRow(last)
      return [first, nextRow(first), nextRow(nextRow(first))]
      })
      assert.deepEqual(rows.map((r) => r.seq), [2, 3, 4])
      await assert.rejects(store.audit.appendMany((last) => [nextRow(last), { seq: 9, hash: 'x', line: '{}' }]))
      assert.deepEqual((await store.audit.read(0, 10)).map((r) => r.seq), [1, 2, 3, 4])
    },
  },
  read: {
    'reads in seq order, after a seq, in pages': async (store) => {
      for (let i = 0; i < 7; i++) await store.audit.append(nextRow)
      const all = await store.audit.read(0, 100)
      assert.deepEqual(all.map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7])
      assert.deepEqual((await store.audit.read(0, 3)).map((r) => r.seq), [1, 2, 3])
      assert.deepEqual((await store.audit.read(3, 3)).map((r) => r.seq), [4, 5, 6])
      assert.deepEqual((await store.audit.read(6, 3)).map((r) => r.seq), [7])
      assert.deepEqual(await store.audit.read(7, 3), [])
      assert.deepEqual(all[4], { seq: 5, hash: 'h5', line: '{"n":5}' })
    },
  },
  query: {
    'filters on every facet, exactly, and on a time range (since inclusive, until exclusive)': async (store) => {
      await appendFaceted(store)
      const seqs = async (filter: AuditFilter) => (await store.audit.query(filter, { order: 'asc', limit: 100 })).map((r) => r.seq)
      assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5, 6])
      assert.deepEqual(await seqs({ agent: 'bot' }), [1, 2, 4])
      assert.deepEqual(await seqs({ agent: 'bot', decision: 'deny' }), [2, 4])
      assert.deepEqual(await seqs({ user: 'alice', workspace: 'acme', task: 't1' }), [1, 2])
      assert.deepEqual(await seqs({ session: 'ses_b' }), [3, 5])
      assert.deepEqual(await seqs({ connector: 'crm' }), [3, 4])
      assert.deepEqual(await seqs({ error: 'policy_denied' }), [2, 4])
      assert.deepEqual(await seqs({ decision: 'error' }), [5])
      assert.deepEqual(await seqs({ since: '2026-01-01T00:00:02.000Z', until: '2026-01-01T00:00:04.000Z' }), [2, 3])
      assert.deepEqual(await seqs({ agent: 'Bot' }), [], 'exact, case and all')
      assert.deepEqual(await seqs({ agent: "bot' OR 1=1 --" }), [], 'a value is a value, never SQL')
    },
    'pages oldest or newest first after a cursor, and never returns a row without facets for a filter': async (store) => {
      await appendFaceted(store)
      const page = async (order: 'asc' | 'desc', after?: number) => (await store.audit.query({ agent: 'bot' }, { order, limit: 2, ...(after === undefined ? {} : { after }) })).map((r) => r.seq)
      assert.deepEqual(await page('asc'), [1, 2])
      assert.deepEqual(await page('asc', 2), [4])
      assert.deepEqual(await page('desc'), [4, 2])
      assert.deepEqual(await page('desc', 2), [1])
      const rows = await store.audit.query({}, { order: 'desc', limit: 1 })
      assert.deepEqual(rows, [{ seq: 6, hash: 'h6', line: '{"n":6}' }], 'rows come back as stored, without their facets')
      assert.deepEqual((await store.audit.query({ decision: 'allow' }, { order: 'asc', limit: 10 })).map((r) => r.seq), [1, 3])
    },
  },
  summary: {
    'counts each request once per minute and decision, refusals per code, and the busiest connectors and agents; not admin calls, keyvalet\'s records or a stream\'s open record': async (store) => {
      const request = { session: 'ses_a', user: 'alice', workspace: 'acme', task: null, phase: null }
      const rows: (Omit<AuditFacets, 'session' | 'user' | 'workspace' | 'task' | 'phase'> & Partial<AuditFacets>)[] = [
        { time: '2025-12-31T23:59:59.999Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'allow', error: null },
        { time: '2026-01-01T00:00:10.000Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'allow', error: null },
        { time: '2026-01-01T00:00:20.000Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'deny', error: 'policy_denied' },
        { time: '2026-01-01T00:00:30.000Z', mode: 'admin', connector: null, agent: null, decision: 'deny', error: 'admin_token_invalid' },
        { time: '2026-01-01T00:01:05.000Z', mode: 'forward', connector: 'crm', agent: 'other', decision: 'error', error: 'upstream_timeout' },
        { time: '2026-01-01T00:01:30.000Z', mode: 'forward', connector: 'crm', agent: 'other', decision: 'would_deny', error: null },
        { time: '2026-01-01T00:01:40.000Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'allow', error: null, phase: 'open' },
        { time: '2026-01-01T00:01:50.000Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'allow', error: null, phase: 'close' },
        { time: '2026-01-01T00:01:55.000Z', mode: 'keyvalet', connector: null, agent: null, decision: 'error', error: 'audit_unavailable' },
        { time: '2026-01-01T00:02:00.000Z', mode: 'gateway', connector: null, agent: null, decision: 'deny', error: 'task_key_invalid', session: null },
        { time: '2026-01-01T00:02:10.000Z', mode: 'forward', connector: 'crm', agent: 'other', decision: 'deny', error: 'policy_denied' },
        { time: '2026-01-01T00:05:00.000Z', mode: 'gateway', connector: 'github', agent: 'bot', decision: 'allow', error: null },
      ]
      for (const f of rows) await store.audit.append((last) => ({ ...nextRow(last), facets: { ...request, ...f } }))
      await store.audit.append(nextRow)
      const window = { since: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:05:00.000Z' }
      const summary = await store.audit.summary({ ...window, top: 2 })
      assert.deepEqual(summary.minutes, [
        { minute: '2026-01-01T00:00', decision: 'allow', count: 1 },
        { minute: '2026-01-01T00:00', decision: 'deny', count: 1 },
        { minute: '2026-01-01T00:01', decision: 'allow', count: 1 },
        { minute: '2026-01-01T00:01', decision: 'error', count: 1 },
        { minute: '2026-01-01T00:01', decision: 'would_deny', count: 1 },
        { minute: '2026-01-01T00:02', decision: 'deny', count: 2 },
      ])
      assert.deepEqual(summary.errors, [
        { name: 'policy_denied', count: 2, refused: 2 },
        { name: 'task_key_invalid', count: 1, refused: 1 },
        { name: 'upstream_timeout', count: 1, refused: 1 },
      ])
      assert.deepEqual(summary.connectors, [{ name: 'crm', count: 3, refused: 2 }, { name: 'github', count: 3, refused: 1 }], 'a tie goes by name')
      assert.deepEqual(summary.agents, [{ name: 'bot', count: 3, refused: 1 }, { name: 'other', count: 3, refused: 2 }])
      const top1 = await store.audit.summary({ ...window, top: 1 })
      assert.deepEqual([top1.connectors, top1.agents], [[{ name: 'crm', count: 3, refused: 2 }], [{ name: 'bot', count: 3, refused: 1 }]])
      const none = await store.audit.summary({ since: "2026' OR 1=1 --", until: '2026-01-01T00:00:00.000Z', top: 5 })
      assert.deepEqual(none, { minutes: [], errors: [], connectors: [], agents: [] }, 'a bound is a value, never SQL')
    },
  },
  last: {
    'is undefined on an empty log, then the row with the highest seq': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      for (let i = 0; i < 3; i++) await store.audit.append(nextRow)
      assert.deepEqual(await store.audit.last(), { seq: 3, hash: 'h3', line: '{"n":3}' })
    },
  },
}

function nextRow(last: AuditRow | undefined): AuditRow {
  const seq = (last?.seq ?? 0) + 1
  return { seq, hash: `h${seq}`, line: `{"n":${seq}}` }
}

/** Five rows with facets (seconds 1 to 5 of 2026) and a sixth without. */
async function appendFaceted(store: Store): Promise<void> {
  const facets: AuditFacets[] = [
    { time: '', session: 'ses_a', agent: 'bot', user: 'alice', workspace: 'acme', task: 't1', connector: 'github', decision: 'allow', error: null },
    { time: '', session: 'ses_a', agent: 'bot', user: 'alice', workspace: 'acme', task: 't1', connector: 'github', decision: 'deny', error: 'policy_denied' },
    { time: '', session: 'ses_b', agent: 'other', user: 'bob', workspace: 'acme', task: 't2', connector: 'crm', decision: 'allow', error: null },
    { time: '', session: null, agent: 'bot', user: null, workspace: null, task: null, connector: 'crm', decision: 'deny', error: 'policy_denied' },
    { time: '', session: 'ses_b', agent: null, user: null, workspace: null, task: null, connector: null, decision: 'error', error: 'upstream_timeout' },
  ].map((f, i) => ({ ...f, time: `2026-01-01T00:00:0${i + 1}.000Z`, mode: 'gateway', phase: null }))
  for (const f of facets) await store.audit.append((last) => ({ ...nextRow(last), facets: f }))
  await store.audit.append(nextRow)
}
