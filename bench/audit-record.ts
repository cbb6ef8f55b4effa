/**
 * `node bench/audit-record.ts`: the CPU one audit record costs the proxy's thread, from masking
 * its fields to its commit. Each record goes the way the proxy sends it: `maskRecord` with a
 * bearer credential's mask, then `AuditWriter.append` with the engine on this thread (SQLite,
 * fsync off: audit.thread auto), which builds the canonical JSON, the keyed hash and the row and
 * commits the batch, into a fresh audit file per round. The records are three taken from a real
 * run (`keyvalet audit` after an allowed GET, one with a query, a policy denial), each with its
 * own request id, trace id and latency. AUDIT_BATCH (default 1,16) records are appended in one
 * turn and awaited, AUDIT_RECORDS (default 4000) per round, AUDIT_ROUNDS (default 5) rounds.
 *
 * AUDIT_BASELINE=<git ref> also runs that commit's src/ (extracted under bench/results/), rounds
 * alternating with this tree's, so that before and after see the same load; each round is a
 * process of its own (a warm-up pass, then the measured one), so neither inherits the other's
 * heap or compiled code.
 * Reports CPU µs per record, best and median of the rounds: this thread's CPU (what the proxy's
 * event loop pays; process.threadCpuUsage) and the whole process's (with SQLite's checkpoint
 * thread and the kernel's writes), which the machine's other load disturbs far less than wall time.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { NewAuditRow } from '../src/store/store.ts'

const RECORDS = Number(process.env.AUDIT_RECORDS ?? 4000)
const ROUNDS = Number(process.env.AUDIT_ROUNDS ?? 5)
const BATCHES = (process.env.AUDIT_BATCH ?? '1,16').split(',').map(Number)
const BASELINE = process.env.AUDIT_BASELINE
const SECRET = 'echo-secret-0123456789abcdef01234567'

const here = dirname(fileURLToPath(import.meta.url))

/** The pieces of one src/ tree this bench drives. */
interface Tree {
  readonly name: string
  readonly AuditWriter: typeof import('../src/audit/audit-writer.ts').AuditWriter
  readonly AuditLog: typeof import('../src/audit/audit-log.ts').AuditLog
  readonly maskRecord: typeof import('../src/audit/mask.ts').maskRecord
  readonly MaskPatterns: typeof import('../src/redact/patterns.ts').MaskPatterns
  readonly SqliteStore: typeof import('../src/store/sqlite-store.ts').SqliteStore
}

async function load(name: string, root: string): Promise<Tree> {
  const at = (path: string) => pathToFileURL(join(root, path)).href
  const [writer, log, mask, patterns, sqlite] = await Promise.all(['audit/audit-writer.ts', 'audit/audit-log.ts', 'audit/mask.ts', 'redact/patterns.ts', 'store/sqlite-store.ts'].map((path) => import(at(path))))
  return { name, AuditWriter: writer.AuditWriter, AuditLog: log.AuditLog, maskRecord: mask.maskRecord, MaskPatterns: patterns.MaskPatterns, SqliteStore: sqlite.SqliteStore }
}

/** The baseline's src/, extracted once beside the bench results (inside the repository, so its imports of node_modules resolve). */
function extract(ref: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', ref], { cwd: here, encoding: 'utf8' }).trim()
  const dir = join(here, 'results', `audit-record-${commit}`)
  if (!existsSync(join(dir, 'src'))) {
    mkdirSync(dir, { recursive: true })
    execFileSync('sh', ['-c', `git archive ${commit} src | tar -x -C ${JSON.stringify(dir)}`], { cwd: join(here, '..') })
  }
  return join(dir, 'src')
}

/** Records as the proxy makes them (AuditFields), from three lines of a real run, without their chain fields. */
function recordFor(i: number): Record<string, unknown> {
  const common = {
    request_id: `req_2f9889c${i.toString(16)}`, mode: 'gateway', session: 'ses_76bc20cf0a7239f0', agent: 'test-agent', user: 'alice', workspace: 'acme', task: 'task-1',
    connector: 'echo', method: 'GET', bytes_in: 0, trace_id: (0x95fbd98b + i).toString(16).padStart(32, '0'), config_version: 'cfg_379180edf2be9003',
    latency_ms: 1.969448 + (i % 1000) / 997,
  }
  const decided = (segments: string[]) => ({ grants: ['echo:read'], segments, header_names: ['host', 'connection', 'authorization'], headers: {}, carries_body: false })
  switch (i % 3) {
    case 0:
      return { ...common, path: '/items/1', query_keys: [], decision: 'allow', reason: 'rule_matched', rule: 'read-items', credential: 'echo-token', status: 200, upstream_status: 200, error: null, bytes_out: 269, redactions: 1, decided_on: decided(['items', '1']) }
    case 1:
      return { ...common, path: '/items/1', query_keys: ['x', 'y'], decision: 'allow', reason: 'rule_matched', rule: 'read-items', credential: 'echo-token', status: 200, upstream_status: 200, error: null, bytes_out: 277, redactions: 1, decided_on: decided(['items', '1']) }
    default:
      return {
        ...common, path: '/nope', query_keys: [], decision: 'deny', reason: 'no_rule_for_path', rule: null, credential: null, status: 403, upstream_status: null, error: 'policy_denied', bytes_out: 0, redactions: 0,
        decided_on: decided(['nope']), detail: { reason: 'no_rule_for_path', rule: null, why: 'no rule of connector echo matches the path' },
      }
  }
}

/**
 * What a round measures: `record`, the whole way (mask, writer, engine, log, SQLite); `mask`,
 * maskRecord alone; `log`, the AuditLog alone (canonical JSON, hash, promises) over a store that
 * keeps rows in an array (the SQLite commit left out); `insert`, the SQLite AuditRepo alone,
 * appending the rows a first `log` pass built (the store as the engine opens it).
 */
const PARTS = (process.env.AUDIT_PARTS ?? 'record,mask,log,insert').split(',')

/** µs of CPU per record for one round: this thread's and the process's. */
async function round(tree: Tree, part: string, batch: number, dir: string): Promise<{ thread: number; process: number }> {
  const path = mkdtempSync(join(dir, 'round-'))
  const mask = tree.MaskPatterns.of([SECRET])
  const records = Array.from({ length: RECORDS }, (_, i) => recordFor(i))
  let finish = async (): Promise<void> => {}
  let append: (fields: never) => Promise<unknown>
  if (part === 'record') {
    const writer = await tree.AuditWriter.start({ store: { kind: 'sqlite', path: join(path, 'keyvalet.db'), fsync: false }, key: Buffer.alloc(32, 7), reserveBytes: 65536, thread: false, configVersion: () => 'cfg_379180edf2be9003' })
    append = (fields) => writer.append(tree.maskRecord(fields, mask))
    finish = () => writer.close()
  } else if (part === 'mask') {
    append = async (fields) => tree.maskRecord(fields, mask)
  } else if (part === 'insert') {
    const rows = await builtRows(tree, records)
    const store = tree.SqliteStore.open(join(path, 'keyvalet.db'), { auditYieldsWhenBusy: true, backgroundCheckpoints: true })
    let next = 0
    const pending: NewAuditRow[] = []
    append = (async () => {
      pending.push(rows[next++] as NewAuditRow)
      await Promise.resolve() // the rows appended in the same turn go in one commit, as the log's batches do
      if (pending.length > 0) await store.audit.append(pending.splice(0))
    }) as never
    finish = () => store.close()
  } else {
    const rows: unknown[] = []
    const repo = { append: async (batch: { chainSeq: number }[]) => batch.map((row) => (rows.push(row), { ...row, seq: rows.length })), chainLast: async () => undefined }
    const log = new tree.AuditLog(repo as never, Buffer.alloc(32, 7), Date.now, 'ins_bench')
    append = (fields) => log.append(fields)
  }
  const thread0 = process.threadCpuUsage()
  const process0 = process.cpuUsage()
  for (let i = 0; i < RECORDS; i += batch) {
    const appended: Promise<unknown>[] = []
    for (let j = i; j < i + batch && j < RECORDS; j++) appended.push(append(records[j] as never))
    await Promise.all(appended)
  }
  const thread = process.threadCpuUsage(thread0)
  const proc = process.cpuUsage(process0)
  await finish()
  rmSync(path, { recursive: true, force: true, maxRetries: 10 }) // retried: the checkpoint thread may still be closing its connection to the file
  return { thread: (thread.user + thread.system) / RECORDS, process: (proc.user + proc.system) / RECORDS }
}

/** The rows the AuditLog of `tree` makes of the records (what the store is given). */
async function builtRows(tree: Tree, records: Record<string, unknown>[]): Promise<NewAuditRow[]> {
  const rows: NewAuditRow[] = []
  const repo = { append: async (batch: NewAuditRow[]) => batch.map((row) => (rows.push(row), { ...row, seq: rows.length })), chainLast: async () => undefined }
  const log = new tree.AuditLog(repo as never, Buffer.alloc(32, 7), Date.now, 'ins_bench')
  await Promise.all(records.map((fields) => log.append(fields as never)))
  return rows
}

/** In a child (argv: --round SRC PART BATCH): one warm-up and one measured round of that tree, printed as JSON. */
if (process.argv[2] === '--round') {
  const [root, part, batch] = process.argv.slice(3) as [string, string, string]
  const tree = await load(root, root)
  const dir = mkdtempSync(join(tmpdir(), 'kv-audit-record-'))
  try {
    await round(tree, part, Number(batch), dir) // warm-up: compiled code, caches
    console.log(JSON.stringify(await round(tree, part, Number(batch), dir)))
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 10 })
  }
} else {
  // Each round in a process of its own, the trees alternating: neither inherits the other's heap or compiled code.
  const trees = [{ name: 'this tree', root: join(here, '..', 'src') }]
  if (BASELINE !== undefined) trees.unshift({ name: `baseline ${BASELINE}`, root: extract(BASELINE) })
  const best = (xs: number[]) => Math.min(...xs)
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  for (const part of PARTS) for (const batch of part === 'mask' ? [1] : BATCHES) {
    const results = new Map<string, { thread: number[]; process: number[] }>()
    for (let r = 0; r < ROUNDS; r++) {
      for (const tree of r % 2 === 0 ? trees : [...trees].reverse()) {
        const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--round', tree.root, part, String(batch)], { encoding: 'utf8' })
        const { thread, process: proc } = JSON.parse(out) as { thread: number; process: number }
        const seen = results.get(tree.name) ?? { thread: [], process: [] }
        seen.thread.push(thread)
        seen.process.push(proc)
        results.set(tree.name, seen)
      }
    }
    for (const [name, { thread, process: proc }] of results) {
      console.log(`${part}, batches of ${batch}, ${name}: thread ${best(thread).toFixed(1)} best / ${median(thread).toFixed(1)} median µs CPU per record; process ${best(proc).toFixed(1)} / ${median(proc).toFixed(1)} (${ROUNDS} rounds of ${RECORDS})`)
    }
  }
}
