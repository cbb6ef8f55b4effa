import { randomFillSync } from 'node:crypto'

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): keyvalet is one hop of the caller's
 * trace. A valid incoming `traceparent` is continued: same trace id and flags, keyvalet's own span
 * id as the parent the upstream sees, `tracestate` passed on unchanged. A missing or invalid one
 * starts a new trace (sampled flag off) and drops any `tracestate`, as the specification asks.
 * The trace id is what the audit record and the operator log name.
 */
export interface Trace {
  /** 32 lower-case hex digits, never all zero. */
  readonly traceId: string
  /** keyvalet's span: 16 lower-case hex digits. */
  readonly spanId: string
  /** Two hex digits (bit 0: sampled), as received, or 00 for a trace keyvalet started. */
  readonly flags: string
  /** Whether the trace came from the caller (its tracestate may then go on). */
  readonly continued: boolean
}

/** version 00: exactly these fields; a later version may append `-…` after them (we speak 00). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

export function traceOf(header: string | string[] | undefined): Trace {
  const parsed = typeof header === 'string' ? parseTraceparent(header) : undefined
  if (parsed !== undefined) return { ...parsed, spanId: randomHex(8), continued: true }
  return { traceId: randomHex(16), spanId: randomHex(8), flags: '00', continued: false }
}

/** The `traceparent` keyvalet sends upstream: the trace, with keyvalet's span as the parent. */
export function traceparent(trace: Trace): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`
}

function parseTraceparent(value: string): { traceId: string; flags: string } | undefined {
  const m = TRACEPARENT.exec(value.trim())
  if (m === null) return undefined
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined]
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined
  return { traceId, flags }
}

/**
 * Random ids from a pooled buffer: one getrandom call per 256 ids rather than one per id. Ids
 * identify, they protect nothing, but a predictable one would let a sandbox forge another's.
 */
const pool = Buffer.alloc(4096)
let offset = pool.length

function randomHex(bytes: number): string {
  for (;;) {
    if (offset + bytes > pool.length) {
      randomFillSync(pool)
      offset = 0
    }
    const hex = pool.toString('hex', offset, offset + bytes)
    offset += bytes
    if (!/^0+$/.test(hex)) return hex
  }
}
