import type { AuditFields } from '../audit/record.ts'

/**
 * What watches requests settle, besides the audit: the metrics and the operator log line. Told
 * once per request outcome — its closing record, as the audit will hold it — by the Recorder,
 * the one place every outcome passes (never of an open record). Contract: synchronous, cheap
 * (no allocation it can avoid), never throws; it reads `fields`, never keeps or changes them.
 */
export interface RequestObserver {
  /** `upstreamMs`: time from sending to the upstream to its answer's head (or the failure), when the request got that far. */
  settled(fields: AuditFields, upstreamMs: number | undefined): void
  /** A request answered audit_unavailable at once: no record could be promised it. */
  unadmitted(): void
}
