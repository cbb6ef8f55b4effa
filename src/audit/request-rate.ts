import type { AuditSummary } from '../store/store.ts'

/** How many requests a bucket of time saw, by decision. */
export interface RateBucket {
  /** ISO 8601 in UTC: where the bucket starts (a multiple of its length since the epoch). */
  readonly start: string
  readonly allow: number
  readonly would_deny: number
  readonly deny: number
  readonly error: number
}

const DECISIONS = ['allow', 'would_deny', 'deny', 'error'] as const
type Decision = (typeof DECISIONS)[number]
const MINUTE_MS = 60_000

/**
 * The store's per-minute counts gathered into buckets of `bucketMinutes`, every bucket from the
 * one holding `since` to the one holding the last instant before `until`, empty ones included (a
 * chart's x axis): a bucket starts at a multiple of its length since the epoch, so the first and
 * the last may be partly outside the window (they count only what is inside it).
 */
export function requestRate(minutes: AuditSummary['minutes'], window: { readonly since: number; readonly until: number; readonly bucketMinutes: number }): RateBucket[] {
  const length = window.bucketMinutes * MINUTE_MS
  const first = Math.floor(window.since / length) * length
  const last = Math.floor((window.until - 1) / length) * length
  const buckets: Record<Decision, number>[] = []
  for (let start = first; start <= last; start += length) buckets.push({ allow: 0, would_deny: 0, deny: 0, error: 0 })
  for (const { minute, decision, count } of minutes) {
    const at = Date.parse(`${minute}:00.000Z`)
    const bucket = buckets[Math.floor((at - first) / length)]
    if (bucket !== undefined && (DECISIONS as readonly string[]).includes(decision)) bucket[decision as Decision] += count
  }
  return buckets.map((counts, i) => ({ start: new Date(first + i * length).toISOString(), ...counts }))
}
