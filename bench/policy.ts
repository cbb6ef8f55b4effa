/**
 * Policy decision cost, in-process: one connector with 1,000 rules parsed from YAML by the real
 * loader, then decide() timed on a worst case (only the last rule matches), a first-rule match,
 * a miss and a method miss; normalisePath() timed per call.
 * Fork it (sends one PolicyResult over IPC) or run it alone (`node bench/policy.ts`, prints JSON).
 */

import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../src/config/load.ts'
import { decide } from '../src/policy/decide.ts'
import type { DecideArgs } from '../src/policy/decision.ts'
import { normalisePath } from '../src/policy/path.ts'
import type { Grant } from '../src/model/policy.ts'
import { median } from './stats.ts'

export interface TimedCase {
  readonly name: string
  readonly expect: string
  readonly got: string
  readonly iterations: number
  /** Median over rounds, per call. */
  readonly usPerOp: number
  readonly minUsPerOp: number
}

export interface PolicyResult {
  readonly rules: number
  readonly parseMs: number
  readonly decide: readonly TimedCase[]
  readonly normalisePath: readonly TimedCase[]
}

const RULES = 1000

export function bigConfigText(rules = RULES): string {
  const lines = ['version: 1', 'listen:', '  gateway: "127.0.0.1:0"', 'data_dir: ./data', 'connectors:', '  big:', '    upstream: https://api.example.com/v1', '    rules:']
  for (let i = 0; i < rules; i++) {
    const methods = i % 3 === 0 ? '[GET, HEAD]' : i % 3 === 1 ? '[GET]' : '[GET, POST]'
    const severity = i % 3 === 2 ? 'write' : 'read'
    lines.push(`      - { id: r${i}, methods: ${methods}, path: "/r${i}/items/:item/parts/:part/**", severity: ${severity} }`)
  }
  return lines.join('\n') + '\n'
}

/** Runs `fn` in rounds after a warm-up; returns the median and min µs per call. */
export function time(iterations: number, fn: () => number): { usPerOp: number; minUsPerOp: number; sink: number } {
  const rounds = 5
  const perRound = Math.max(1, Math.floor(iterations / rounds))
  let sink = 0
  for (let i = 0; i < Math.min(20_000, perRound); i++) sink += fn()
  const results: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < perRound; i++) sink += fn()
    results.push(Number(process.hrtime.bigint() - t0) / 1e3 / perRound)
  }
  return { usPerOp: median(results), minUsPerOp: Math.min(...results), sink }
}

function describe(d: ReturnType<typeof decide>): string {
  return d.effect === 'need_body' ? 'need_body' : `${d.effect}:${d.reason}${d.rule === undefined ? '' : `:${d.rule.id}`}`
}

export function runPolicyBench(iterations = 200_000): PolicyResult {
  const text = bigConfigText()
  const t0 = process.hrtime.bigint()
  const config = parseConfig(text, join(tmpdir(), 'keyvalet-bench-big.yaml'))
  const parseMs = Number(process.hrtime.bigint() - t0) / 1e6
  const connector = config.policy.connectors.get('big')
  if (connector === undefined || connector.rules.length !== RULES) throw new Error(`expected connector big with ${RULES} rules`)
  const grants: readonly Grant[] = [{ connector: 'big', maxSeverity: 'admin', rules: undefined }]
  const query = new URLSearchParams('')
  const headers = { accept: 'application/json', 'user-agent': 'bench' }
  const last = RULES - 1
  const args = (method: string, path: string): DecideArgs => ({ connector, grants, method, segments: normalisePath(path).segments, query, headers })

  // The two cases the target is about get the full count; the others, for contrast, a quarter.
  const side = Math.max(1000, Math.floor(iterations / 4))
  const cases: { name: string; expect: string; args: DecideArgs; n: number }[] = [
    { name: `worst case: only the last rule (r${last}) matches`, expect: `allow:rule_matched:r${last}`, args: args('GET', `/r${last}/items/42/parts/7/x`), n: iterations },
    { name: 'miss: no rule matches the path', expect: 'deny:no_rule_for_path', args: args('GET', '/nothing/items/42/parts/7/x'), n: iterations },
    { name: 'first rule (r0) matches', expect: 'allow:rule_matched:r0', args: args('GET', '/r0/items/42/parts/7/x'), n: side },
    { name: `method miss: path of r${last}, DELETE`, expect: 'deny:method_not_allowed', args: args('DELETE', `/r${last}/items/42/parts/7/x`), n: side },
  ]
  const decideResults: TimedCase[] = cases.map((c) => {
    const got = describe(decide(c.args))
    if (got !== c.expect) throw new Error(`decide(${c.name}) gave ${got}, expected ${c.expect}`)
    const t = time(c.n, () => (decide(c.args).effect === 'allow' ? 1 : 0))
    return { name: c.name, expect: c.expect, got, iterations: c.n, usPerOp: t.usPerOp, minUsPerOp: t.minUsPerOp }
  })

  // What the gateway does per request around decide(): normalise, parse the query, decide.
  const target = `/r${last}/items/42/parts/7/x`
  const e2e = time(side, () => {
    const d = decide({ connector, grants, method: 'GET', segments: normalisePath(target).segments, query: new URLSearchParams(''), headers })
    return d.effect === 'allow' ? 1 : 0
  })
  decideResults.push({ name: 'worst case incl. normalisePath + URLSearchParams', expect: `allow:rule_matched:r${last}`, got: `allow:rule_matched:r${last}`, iterations: side, usPerOp: e2e.usPerOp, minUsPerOp: e2e.minUsPerOp })

  const paths: { name: string; path: string }[] = [
    { name: 'normalisePath /echo/items/1', path: '/echo/items/1' },
    { name: 'normalisePath 8 segments', path: '/echo/repos/acme/widgets/issues/1234/comments/5678' },
    { name: 'normalisePath with %20 escapes', path: '/echo/files/a%20b/c%20d' },
  ]
  const pathResults: TimedCase[] = paths.map((p) => {
    const got = normalisePath(p.path).segments.join('/')
    const t = time(iterations, () => normalisePath(p.path).segments.length)
    return { name: p.name, expect: got, got, iterations, usPerOp: t.usPerOp, minUsPerOp: t.minUsPerOp }
  })

  return { rules: RULES, parseMs, decide: decideResults, normalisePath: pathResults }
}

if (import.meta.main) {
  const iterations = Number(process.env.BENCH_POLICY_ITERATIONS ?? 200_000)
  try {
    const result = runPolicyBench(iterations)
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
