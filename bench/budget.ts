/**
 * Budget check cost, in-process: the real budget stage (src/proxy/stages/budget.ts) on a real
 * SQLite store (a temp folder), timed per request on: no budget applies (the stage's synchronous
 * path), a session's own request budget (a unit of the lease; one store write per leased block),
 * and a per-agent rate with a bytes budget (the cached bytes total, then a unit of the lease). The
 * request budgets are large enough never to refuse and far from the limit: the cached path. Fork it (sends one BudgetResult over IPC) or run it alone (`node bench/budget.ts`).
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Budgets } from '../src/budgets/budgets.ts'
import type { Budget } from '../src/model/budget.ts'
import type { Session } from '../src/model/session.ts'
import type { AdmittedContext } from '../src/proxy/context.ts'
import { createBudget } from '../src/proxy/stages/budget.ts'
import { SqliteStore } from '../src/store/sqlite-store.ts'
import { median } from './stats.ts'

export interface BudgetCase {
  readonly name: string
  readonly iterations: number
  /** Median over rounds, per request. */
  readonly usPerOp: number
  readonly minUsPerOp: number
}

export interface BudgetResult {
  readonly cases: readonly BudgetCase[]
}

const HOUR = 3_600_000

async function time(iterations: number, fn: () => void | Promise<void>): Promise<{ usPerOp: number; minUsPerOp: number }> {
  const rounds = 5
  const perRound = Math.max(1, Math.floor(iterations / rounds))
  for (let i = 0; i < Math.min(5000, perRound); i++) await fn()
  const results: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < perRound; i++) {
      const pending = fn()
      if (pending !== undefined) await pending
    }
    results.push(Number(process.hrtime.bigint() - t0) / 1e3 / perRound)
  }
  return { usPerOp: median(results), minUsPerOp: Math.min(...results) }
}

export async function runBudgetBench(iterations = 100_000): Promise<BudgetResult> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-bench-budget-'))
  const store = SqliteStore.open(join(dir, 'keyvalet.db'))
  try {
    const now = Date.now()
    const session = (budget?: number): Session => ({
      id: 'ses_0123456789abcdef', agent: 'agent', user: 'user', workspace: 'ws', task: 'task', grants: [], createdAt: now, expiresAt: now + HOUR, revokedAt: undefined,
      ...(budget === undefined ? {} : { budget }),
    })
    const rated: Budget[] = [{ name: 'agent-rate', per: 'agent', connector: 'api', rule: undefined, windowMs: HOUR, limits: { requests: Number.MAX_SAFE_INTEGER, bytes_down: Number.MAX_SAFE_INTEGER } }]
    const budgets = new Budgets(store.counters, rated)
    const ctx = (s: Session) => ({ session: s, decision: undefined, mcp: undefined }) as unknown as AdmittedContext
    const cases: { name: string; run: () => void | Promise<void> }[] = [
      { name: 'no budget applies', run: ((stage, c) => () => stage.run(c))(createBudget(budgets, [], Date.now), ctx(session())) },
      { name: "the session's own request budget (leased)", run: ((stage, c) => () => stage.run(c))(createBudget(budgets, [], Date.now), ctx(session(Number.MAX_SAFE_INTEGER))) },
      { name: 'per-agent rate + bytes budget (cached total, leased)', run: ((stage, c) => () => stage.run(c))(createBudget(budgets, rated, Date.now), ctx(session())) },
    ]
    const out: BudgetCase[] = []
    for (const c of cases) out.push({ name: c.name, iterations, ...(await time(iterations, c.run)) })
    return { cases: out }
  } finally {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const iterations = Number(process.env.BENCH_BUDGET_ITERATIONS ?? 100_000)
  try {
    const result = await runBudgetBench(iterations)
    if (process.send !== undefined) process.send({ event: 'result', result }, () => process.exit(0))
    else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } catch (err) {
    const error = err instanceof Error ? err.stack ?? err.message : String(err)
    if (process.send !== undefined) process.send({ event: 'error', error }, () => process.exit(1))
    else {
      process.stderr.write(`${error}\n`)
      process.exitCode = 1
    }
  }
}
