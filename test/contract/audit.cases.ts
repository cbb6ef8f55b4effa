import assert from 'node:assert/strict'
import type { AuditFacets, AuditFilter, AuditRepo, NewAuditRow, Store } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

/** The audit part of the Store contract: the cases for each method of AuditRepo. */
export const auditCases: RepoCases<AuditRepo> = {
  append: {
    'appends rows of a chain, numbering them in order across chains': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      const a = await store.audit.append([row('ins_a', 1), row('ins_a', 2)])
      const b = await store.audit.append([row('ins_b', 1)])
      const c = await store.audit.append([row('ins_a', 3)])
      const seqs = [...a, ...b, ...c].map((r) => r.seq)
      assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, 'seq grows as rows are appended')
      assert.equal(new Set(seqs).size, 4)
      assert.deepEqual(await store.audit.last(), { ...row('ins_a', 3), seq: seqs[3] })
      assert.deepEqual(a[1], { ...row('ins_a', 2), seq: seqs[1] })
    },
    'refuses a row that does not continue its chain, and appends none of its batch': async (store) => {
      await assert.rejects(store.audit.append([row('ins_a', 2)]))
      await store.audit.append([row('ins_a', 1)])
      await assert.rejects(store.audit.append([row('ins_a', 1)]), 'a second row at the same place: a fork')
      await assert.rejects(store.audit.append([row('ins_a', 3)]))
      await assert.rejects(store.audit.append([row('ins_b', 1), row('ins_a', 2), row('ins_a', 4)]))
      assert.deepEqual((await store.audit.read(0, 10)).map((r) => [r.instance, r.chainSeq]), [['ins_a', 1]])
    },
    'two writers of one chain at once: one of them fails, the chain never forks': async (store) => {
      await store.audit.append([row('ins_a', 1)])
      const results = await Promise.allSettled([store.audit.append([row('ins_a', 2, 'x')]), store.audit.append([row('ins_a', 2, 'y')])])
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
      assert.equal((await store.audit.readChain('ins_a', 0, 10)).length, 2)
    },
  },
  chainLast: {
    'is the last row of that chain only': async (store) => {
      assert.equal(await store.audit.chainLast('ins_a'), undefined)
      await store.audit.append([row('ins_a', 1), row('ins_b', 1), row('ins_a', 2), row('ins_b', 2), row('ins_b', 3)])
      assert.deepEqual({ ...(await store.audit.chainLast('ins_a')), seq: 0 }, { ...row('ins_a', 2), seq: 0 })
      assert.equal((await store.audit.chainLast('ins_b'))?.chainSeq, 3)
      assert.equal(await store.audit.chainLast('ins_c'), undefined)
    },
  },
  chains: {
    'lists every chain with its rows, in the order of its first row': async (store) => {
      assert.deepEqual(await store.audit.chains(), [])
      const rows = await store.audit.append([row('ins_b', 1), row('ins_a', 1), row('ins_b', 2), row('', 1)])
      assert.deepEqual(await store.audit.chains(), [
        { instance: 'ins_b', rows: 2, lastSeq: rows[2]?.seq },
        { instance: 'ins_a', rows: 1, lastSeq: rows[1]?.seq },
        { instance: '', rows: 1, lastSeq: rows[3]?.seq },
      ])
    },
  },
  readChain: {
    'reads one chain in its order, after a place, in pages': async (store) => {
      for (let i = 1; i <= 5; i++) await store.audit.append([row('ins_a', i), row('ins_b', i)])
      const page = async (after: number, limit: number) => (await store.audit.readChain('ins_b', after, limit)).map((r) => [r.instance, r.chainSeq, r.line])
      assert.deepEqual(await page(0, 2), [['ins_b', 1, '{"i":"ins_b","n":1}'], ['ins_b', 2, '{"i":"ins_b","n":2}']])
      assert.deepEqual((await page(2, 10)).map((r) => r[1]), [3, 4, 5])
      assert.deepEqual(await page(5, 10), [])
    },
  },
  read: {
    'reads every chain in seq order, after a seq, in pages': async (store) => {
      for (let i = 1; i <= 4; i++) await store.audit.append([row('ins_a', i)])
      await store.audit.append([row('ins_b', 1), row('ins_b', 2), row('ins_b', 3)])
      const all = await store.audit.read(0, 100)
      assert.deepEqual(all.map((r) => `${r.instance}:${r.chainSeq}`), ['ins_a:1', 'ins_a:2', 'ins_a:3', 'ins_a:4', 'ins_b:1', 'ins_b:2', 'ins_b:3'])
      const seqs = all.map((r) => r.seq)
      assert.deepEqual((await store.audit.read(0, 3)).map((r) => r.seq), seqs.slice(0, 3))
      assert.deepEqual((await store.audit.read(seqs[2] ?? 0, 3)).map((r) => r.seq), seqs.slice(3, 6))
      assert.deepEqual((await store.audit.read(seqs[5] ?? 0, 3)).map((r) => r.seq), seqs.slice(6))
      assert.deepEqual(await store.audit.read(seqs[6] ?? 0, 3), [])
      assert.deepEqual(all[4], { ...row('ins_b', 1), seq: seqs[4] })
    },
  },
  query: {
    'filters on every facet, exactly, and on a time range (since inclusive, until exclusive)': async (store) => {
      const at = await appendFaceted(store)
      const seqs = async (filter: AuditFilter) => (await store.audit.query(filter, { order: 'asc', limit: 100 })).map((r) => at.indexOf(r.seq) + 1)
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
    'pages oldest or newest first after a cursor, across chains, and never returns a row without facets for a filter': async (store) => {
      const at = await appendFaceted(store)
      const nth = (seq: number) => at.indexOf(seq) + 1
      const page = async (order: 'asc' | 'desc', after?: number) => (await store.audit.query({ agent: 'bot' }, { order, limit: 2, ...(after === undefined ? {} : { after: at[after - 1] }) })).map((r) => nth(r.seq))
      assert.deepEqual(await page('asc'), [1, 2])
      assert.deepEqual(await page('asc', 2), [4])
      assert.deepEqual(await page('desc'), [4, 2])
      assert.deepEqual(await page('desc', 2), [1])
      const rows = await store.audit.query({}, { order: 'desc', limit: 1 })
      assert.deepEqual(rows, [{ ...row('ins_b', 3), seq: at[5] }], 'rows come back as stored, without their facets')
      assert.deepEqual((await store.audit.query({ decision: 'allow' }, { order: 'asc', limit: 10 })).map((r) => nth(r.seq)), [1, 3])
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
      for (const [i, f] of rows.entries()) await store.audit.append([{ ...row('ins_a', i + 1), facets: { ...request, ...f } }])
      await store.audit.append([row('ins_a', rows.length + 1)])
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
    'is undefined on an empty log, then the row with the highest seq, of any chain': async (store) => {
      assert.equal(await store.audit.last(), undefined)
      await store.audit.append([row('ins_a', 1), row('ins_a', 2)])
      const [b] = await store.audit.append([row('ins_b', 1)])
      assert.deepEqual(await store.audit.last(), b)
    },
  },
}

/** A row at `chainSeq` in `instance`'s chain; its line says where (and `mark`, to tell two apart). */
function row(instance: string, chainSeq: number, mark?: string): NewAuditRow {
  return { instance, chainSeq, hash: `h${instance}${chainSeq}${mark ?? ''}`, line: `{"i":"${instance}","n":${chainSeq}${mark === undefined ? '' : `,"m":"${mark}"`}}` }
}

/** Five rows with facets (seconds 1 to 5 of 2026) over two chains and a sixth without; returns their seqs. */
async function appendFaceted(store: Store): Promise<number[]> {
  const facets: AuditFacets[] = [
    { time: '', session: 'ses_a', agent: 'bot', user: 'alice', workspace: 'acme', task: 't1', connector: 'github', decision: 'allow', error: null },
    { time: '', session: 'ses_a', agent: 'bot', user: 'alice', workspace: 'acme', task: 't1', connector: 'github', decision: 'deny', error: 'policy_denied' },
    { time: '', session: 'ses_b', agent: 'other', user: 'bob', workspace: 'acme', task: 't2', connector: 'crm', decision: 'allow', error: null },
    { time: '', session: null, agent: 'bot', user: null, workspace: null, task: null, connector: 'crm', decision: 'deny', error: 'policy_denied' },
    { time: '', session: 'ses_b', agent: null, user: null, workspace: null, task: null, connector: null, decision: 'error', error: 'upstream_timeout' },
  ].map((f, i) => ({ ...f, time: `2026-01-01T00:00:0${i + 1}.000Z`, mode: 'gateway', phase: null }))
  const places: [string, number][] = [['ins_a', 1], ['ins_b', 1], ['ins_a', 2], ['ins_b', 2], ['ins_a', 3]]
  const seqs: number[] = []
  for (const [i, f] of facets.entries()) {
    const [instance, chainSeq] = places[i] as [string, number]
    const [appended] = await store.audit.append([{ ...row(instance, chainSeq), facets: f }])
    seqs.push(appended?.seq ?? 0)
  }
  const [last] = await store.audit.append([row('ins_b', 3)])
  seqs.push(last?.seq ?? 0)
  return seqs
}
