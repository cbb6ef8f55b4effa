import { createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import type { AuditRepo, AuditRow } from '../store/store.ts'
import { auditHash, GENESIS_PREV } from './audit-log.ts'
import { canonicalJson } from './canonical-json.ts'
import type { AuditRecord } from './record.ts'
import { StreamLedger, type OpenStream } from './streams.ts'

export type AuditProblem = 'hash_mismatch' | 'chain_broken' | 'seq_gap' | 'unparseable' | 'stream_unmatched'

/** One intact chain: its instance ('' for the chain of records from before instances had their own), records and last hash. */
export interface VerifiedChain {
  readonly instance: string
  readonly count: number
  readonly lastHash: string
  /** Streams with an open record and no closing one (in flight now, or cut off by a crash). */
  readonly open: OpenStream[]
}

export type AuditVerification =
  /** `count`: records in every chain together. */
  | { ok: true; count: number; chains: VerifiedChain[] }
  /**
   * `instance` names the chain that breaks and `seq` the first broken or missing record in it;
   * `count` how many records verified before it (earlier chains included).
   */
  | { ok: false; count: number; instance: string; seq: number; problem: AuditProblem; message: string }

/**
 * Walks every chain of the log (one per instance that wrote records), each page by page in its
 * own order, and reports the first record that is missing (seq_gap), not a canonical JSON record
 * (unparseable), altered, moved to another chain or not made with `key` (hash_mismatch), linked
 * to something other than its predecessor (chain_broken), or closing a stream that is not open in
 * its chain (stream_unmatched: see StreamLedger). Streams left open are listed, not a failure.
 *
 * A chain cannot show that its newest records were removed (truncation), nor can the log show
 * that a whole chain was: what remains is still valid. Each chain's count and last hash are
 * returned so an operator can anchor them elsewhere (a ticket, another system's log) and compare.
 */
export async function verifyAudit(
  repo: AuditRepo,
  key: Buffer,
  /** `pause`, awaited between pages, lets a server go on serving while a long log is walked. */
  opts: { pageSize?: number; pause?: () => Promise<void> } = {},
): Promise<AuditVerification> {
  const pageSize = Math.max(1, Math.floor(opts.pageSize ?? 1000))
  // A KeyObject made once: a raw key is checked again by every createHmac (about 7× the HMAC of a record).
  const hmacKey = createSecretKey(key)
  const chains: VerifiedChain[] = []
  let total = 0
  for (const { instance } of await repo.chains()) {
    const result = await verifyChain(repo, hmacKey, instance, pageSize, opts.pause)
    if (!result.ok) return { ok: false, count: total + result.count, instance, seq: result.seq, problem: result.problem, message: result.message }
    total += result.chain.count
    chains.push(result.chain)
  }
  return { ok: true, count: total, chains }
}

type ChainResult = { ok: true; chain: VerifiedChain } | { ok: false; count: number; seq: number; problem: AuditProblem; message: string }

async function verifyChain(repo: AuditRepo, key: KeyObject, instance: string, pageSize: number, pause: (() => Promise<void>) | undefined): Promise<ChainResult> {
  const name = chainName(instance)
  let count = 0
  let prevHash = GENESIS_PREV
  const streams = new StreamLedger()
  for (;;) {
    const page = await repo.readChain(instance, count, pageSize)
    if (page.length === 0) return { ok: true, chain: { instance, count, lastHash: prevHash, open: streams.open } }
    for (const row of page) {
      const expected = count + 1
      const fail = (seq: number, problem: AuditProblem, message: string) => ({ ok: false, count, seq, problem, message: `${name}: ${message}` }) as const
      if (row.chainSeq !== expected) {
        return fail(expected, 'seq_gap', `record ${expected} is missing (the next stored record is ${row.chainSeq})`)
      }
      const record = parseLine(row)
      if (typeof record === 'string') return fail(row.chainSeq, 'unparseable', `record ${row.chainSeq}: ${record}`)
      const { hash, ...body } = record
      if (!sameHex(hash, auditHash(key, body))) {
        return fail(row.chainSeq, 'hash_mismatch', `record ${row.chainSeq} was altered or not written with this key`)
      }
      if (row.hash !== hash) {
        return fail(row.chainSeq, 'hash_mismatch', `record ${row.chainSeq}: the hash column differs from the record's hash`)
      }
      if (record.seq !== row.chainSeq || (record.instance ?? '') !== instance) {
        return fail(row.chainSeq, 'hash_mismatch', `record ${row.chainSeq} holds a record written as seq ${record.seq} of ${chainName(record.instance ?? '')}`)
      }
      if (record.prev !== prevHash) {
        return fail(row.chainSeq, 'chain_broken', `record ${row.chainSeq} does not link to record ${row.chainSeq - 1}`)
      }
      const unmatched = streams.see(record)
      if (unmatched !== undefined) return fail(row.chainSeq, 'stream_unmatched', unmatched)
      prevHash = hash
      count = row.chainSeq
    }
    await pause?.()
  }
}

/** How a chain is named to an operator: '' is the chain of the records written before each instance had its own. */
export function chainName(instance: string): string {
  return instance === '' ? 'the chain from before per-instance chains' : `instance ${instance}`
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
  if (r.instance !== undefined && typeof r.instance !== 'string') return 'the line\'s instance is not a string'
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
