/**
 * `node bench/audit-handoff.ts`: what one audit record costs the proxy's thread and the process,
 * in CPU µs, through the AuditWriter, with its engine on the audit thread and on the main thread
 * (SQLite, fsync off), with records the size of a real request's, appended in bursts as requests
 * finish under load (AUDIT_BURST). Repeatable on a busy machine
 * better than the closed loop: it counts CPU time, not throughput.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { AuditWriter } from '../src/audit/audit-writer.ts'
import type { AuditFields } from '../src/audit/record.ts'

const RECORDS = Number(process.env.AUDIT_RECORDS ?? 40_000)
const BURST = Number(process.env.AUDIT_BURST ?? 32)

function record(i: number): AuditFields {
  return {
    request_id: `req_1a2b3c4d${i.toString(36)}`, mode: 'gateway', session: 'ses_0123456789abcdef', agent: 'bench-agent', user: 'alice',
    workspace: 'bench', task: 'tsk_0123456789', connector: 'demo', method: 'GET', path: '/items/1', query_keys: [], decision: 'allow',
    reason: 'rule_matched', rule: 'read-items', credential: 'demo-token', status: 200, upstream_status: 200, error: null,
    bytes_in: 0, bytes_out: 120, redactions: 0, latency_ms: 1.234567,
  }
}

const dir = mkdtempSync(join(tmpdir(), 'kv-audit-bench-'))
try {
  const ROUNDS = Number(process.env.AUDIT_ROUNDS ?? 6)
  // Rounds alternate between the engine on the audit thread and on this one, so load drifts hit both alike.
  const writers = new Map<boolean, AuditWriter>()
  for (const thread of [true, false]) writers.set(thread, await AuditWriter.start({ store: { kind: 'sqlite', path: join(dir, `keyvalet-${thread}.db`), fsync: false }, key: randomBytes(32), reserveBytes: 1 << 20, thread }))
  const bests = new Map<boolean, { thread: number; proc: number }>([[true, { thread: Infinity, proc: Infinity }], [false, { thread: Infinity, proc: Infinity }]])
  for (let r = 0; r < 2 * ROUNDS; r++) {
    const round = r >> 1
    const threaded = r % 2 === 0
    const writer = writers.get(threaded) as AuditWriter
    const best = bests.get(threaded) as { thread: number; proc: number }
    const thread0 = process.threadCpuUsage()
    const proc0 = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < RECORDS; i += BURST) {
      const appends: Promise<number>[] = []
      for (let j = 0; j < BURST; j++) appends.push(writer.append(record(i + j)))
      await Promise.all(appends)
    }
    const ms = performance.now() - t0
    const thread = process.threadCpuUsage(thread0)
    const proc = process.cpuUsage(proc0)
    const per = (u: { user: number; system: number }): string => ((u.user + u.system) / RECORDS).toFixed(1)
    best.thread = Math.min(best.thread, (thread.user + thread.system) / RECORDS)
    best.proc = Math.min(best.proc, (proc.user + proc.system) / RECORDS)
    console.log(`round ${round}, engine on ${threaded ? 'the audit thread' : 'the main thread'}: ${RECORDS} records in bursts of ${BURST}: main thread ${per(thread)} µs/record, whole process ${per(proc)} µs/record, ${(RECORDS / ms * 1000).toFixed(0)} records/s`)
  }
  for (const [threaded, best] of bests) console.log(`engine on ${threaded ? 'the audit thread' : 'the main thread'}, best of ${ROUNDS} rounds: main thread ${best.thread.toFixed(1)} µs/record, whole process ${best.proc.toFixed(1)} µs/record`)
  for (const writer of writers.values()) await writer.close()
} finally {
  rmSync(dir, { recursive: true, force: true })
}
