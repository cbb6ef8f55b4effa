import type { AuditRecord } from './record.ts'

export interface OpenStream {
  readonly seq: number
  readonly request_id: string
  /** The open record's line, when the caller kept it. */
  readonly line?: string
}

/**
 * Pairs open and closing records while the log is read in order (see AuditFields.phase). Every
 * 'close' must name, in `opened`, an earlier 'open' record of the same request that no other
 * record closed; an 'open' is closed at most once. What is still open at the end was in flight
 * when the log was read, or was cut off by a crash of keyvalet.
 */
export class StreamLedger {
  readonly #open = new Map<number, OpenStream>()

  /** Takes the next record; returns why it breaks the pairing, or undefined. */
  see(record: Pick<AuditRecord, 'seq' | 'request_id' | 'phase' | 'opened'>, line?: string): string | undefined {
    switch (record.phase) {
      case undefined:
        return undefined
      case 'open':
        this.#open.set(record.seq, { seq: record.seq, request_id: record.request_id, ...(line === undefined ? {} : { line }) })
        return undefined
      case 'close': {
        const opened = typeof record.opened === 'number' ? this.#open.get(record.opened) : undefined
        if (opened === undefined || opened.request_id !== record.request_id) {
          return `record ${record.seq} closes a stream (record ${String(record.opened)}) that is not an open stream of request ${record.request_id}`
        }
        this.#open.delete(opened.seq)
        return undefined
      }
      default:
        return `record ${record.seq} has an unknown phase ${JSON.stringify(record.phase)}`
    }
  }

  /** The streams still open, oldest first. */
  get open(): OpenStream[] {
    return [...this.#open.values()]
  }
}
