import { timingSafeEqual } from 'node:crypto'
import type { AuditRepo, AuditRow } from '../store/store.ts'
import { auditHash, GENESIS_PREV } from './audit-log.ts'
import { canonicalJson } from './canonical-json.ts'
import type { AuditRecord } from './record.ts'
import { StreamLedger, type OpenStream } from './streams.ts'

export type AuditProblem = 'hash_mismatch' | 'chain_broken' | 'seq_gap' | 'unparseable' | 'stream_unmatched'

export type AuditVerification =
  /** `open`: streams with an open record and no closing one (in flight now, or cut off by a crash). */
  | { ok: true; count: number; lastHash: string; open: OpenStream[] }
  /** `seq` is the first broken or missing record; `count` how many verified before it. */
  | { ok: false; count: number; seq: number; problem: AuditProblem; message: string }

/**
 * Walks the whole log page by page and reports the first record that is missing (seq_gap), not a
 * canonical JSON record (unparseable), altered or not made with `key` (hash_mismatch), linked
 * to something other than its predecessor (chain_broken), or closing a stream that is not open
 * (stream_unmatched: see StreamLedger). Streams left open are listed, not a failure.
 *
 * The chain cannot show that the newest records were removed (truncation): what remains is still
 * a valid chain. `count` and `lastHash` are returned so an operator can anchor them elsewhere (a
 * ticket, another system's log) and compare later.
 */
export async function verifyAudit(
  repo: AuditRepo,
  key: Buffer,
  /** `pause`, awaited between pages, lets a server go on serving while a long log is walked. */
  opts: { pageSize?: number; pause?: () => Promise<void> } = {},
): Promise<AuditVerification> {
  const pageSize = Math.max(1, Math.floor(opts.pageSize ?? 1000))
  let count = 0
  let prevHash = GENESIS_PREV
  let afterSeq = 0
  const streams = new StreamLedger()
  for (;;) {
    const page = await repo.read(afterSeq, pageSize)
    if (page.length === 0) return { ok: true, count, lastHash: prevHash, open: streams.open }
    for (const row of page) {
      const expected = count + 1
      const fail = (seq: number, problem: AuditProblem, message: string) =>
        ({ ok: false, count, seq, problem, message }) as const
      if (row.seq !== expected) {
        return fail(expected, 'seq_gap', `record ${expected} is missing (the next stored record is ${row.seq})`)
      }
      const record = parseLine(row)
      if (typeof record === 'string') return fail(row.seq, 'unparseable', `record ${row.seq}: ${record}`)
      const { hash, ...body } = record
      if (!sameHex(hash, auditHash(key, body))) {
        return fail(row.seq, 'hash_mismatch', `record ${row.seq} was altered or not written with this key`)
      }
      if (row.hash !== hash) {
        return fail(row.seq, 'hash_mismatch', `record ${row.seq}: the hash column differs from the record's hash`)
      }
      if (record.seq !== row.seq) {
        return fail(row.seq, 'hash_mismatch', `record ${row.seq} holds a record written as seq ${record.seq}`)
      }
      if (record.prev !== prevHash) {
        return fail(row.seq, 'chain_broken', `record ${row.seq} does not link to record ${row.seq - 1}`)
      }
      const unmatched = streams.see(record)
      if (unmatched !== undefined) return fail(row.seq, 'stream_unmatched', unmatched)
      prevHash = hash
      count = row.seq
    }
    afterSeq = count
    await opts.pause?.()
  }
}

/** The parsed record, or a description of why the line is not one. */
function parseLine(row: AuditRow): AuditRecord | string {
  let value: unknown
  try {
    value = JSON.parse(row.line)
  } catch {
    return 'the line is not JSON'
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the line is not a JSON object'
  const r = value as Record<string, unknown>
  if (typeof r.seq !== 'number' || typeof r.prev !== 'string' || typeof r.hash !== 'string') {
    return 'the line lacks seq, prev or hash'
  }
  // Only the canonical form is accepted, so a line cannot read differently (duplicate keys,
  // spacing) from what the hash covers.
  if (canonicalJson(value) !== row.line) return 'the line is not in canonical form'
  return value as AuditRecord
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}
