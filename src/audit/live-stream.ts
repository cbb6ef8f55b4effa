import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { AuditFilter, AuditRepo } from '../store/store.ts'

export interface LiveStreamOptions {
  readonly repo: AuditRepo
  readonly filter: AuditFilter
  /** Send the records after this seq first (a client resuming); undefined: only those committed from now on. */
  readonly after: number | undefined
  /** Subscribes to the audit writer's commits; returns the unsubscribe. */
  readonly onCommitted: (listener: () => void) => () => void
  /** How often the store is read without a commit signal, for records other processes wrote. Default 1000. */
  readonly pollMs?: number
  /** The least time between two reads of the store, however often records commit. Default 100. */
  readonly minIntervalMs?: number
  /** Bytes a subscriber may leave unread in its buffer before it is dropped. Default 1 MiB. */
  readonly maxBufferedBytes?: number
  /** How long a subscriber may read nothing while records wait for it before it is dropped. Default 10000. */
  readonly stallMs?: number
  readonly heartbeatMs?: number
}

const PAGE = 200

/**
 * The live audit stream of one subscriber, as server-sent events: `id: <seq>`, `event: record`,
 * `data: <the record's line>`. Pull-based: after each commit of the audit writer (and every
 * `pollMs`, for other processes and fleet members) the subscriber's own cursor reads the store's
 * next matching records (AuditRepo.query), so records reach it in seq order, exactly once, and a
 * client resumes after the last `id` it saw (`after`). The data plane never waits for a
 * subscriber: the writer only signals. What a subscriber holds is bounded: its unread bytes
 * (`maxBufferedBytes`) and how long it may read nothing (`stallMs`); past either it is sent a
 * final `event: dropped` (reason slow_consumer, last_seq) and its response ends.
 */
export async function pipeLiveStream(res: ServerResponse, signal: AbortSignal, opts: LiveStreamOptions): Promise<void> {
  const maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024
  const stallMs = opts.stallMs ?? 10_000
  const minIntervalMs = opts.minIntervalMs ?? 100
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
  res.write(': keyvalet audit stream\n\n')
  let cursor = opts.after ?? (await opts.repo.last())?.seq ?? 0
  let pending = true
  let wake: (() => void) | undefined
  const poke = (): void => {
    pending = true
    wake?.()
  }
  const unsubscribe = opts.onCommitted(poke)
  const poll = setInterval(poke, opts.pollMs ?? 1000)
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), opts.heartbeatMs ?? 15_000)
  signal.addEventListener('abort', poke, { once: true })
  const drop = (): void => {
    res.end(`event: dropped\ndata: ${JSON.stringify({ reason: 'slow_consumer', last_seq: cursor })}\n\n`)
    // A subscriber that reads nothing would never take even that: it goes after a moment.
    setTimeout(() => res.destroy(), 1000).unref()
  }
  try {
    while (!signal.aborted && !res.destroyed) {
      if (!pending) await new Promise<void>((resolve) => { wake = resolve })
      wake = undefined
      if (signal.aborted) break
      pending = false
      for (;;) {
        const rows = await opts.repo.query(opts.filter, { order: 'asc', after: cursor, limit: PAGE })
        for (const row of rows) {
          res.write(`id: ${row.seq}\nevent: record\ndata: ${row.line}\n\n`)
          cursor = row.seq
        }
        if (res.writableLength > maxBuffered || (res.writableNeedDrain && !(await drained(res, stallMs, signal)))) return drop()
        if (rows.length < PAGE) break
      }
      await new Promise((resolve) => setTimeout(resolve, minIntervalMs))
    }
  } finally {
    unsubscribe()
    clearInterval(poll)
    clearInterval(heartbeat)
    signal.removeEventListener('abort', poke)
    if (!res.writableEnded) res.end()
  }
}

/** Whether the subscriber read its buffer within `ms` (false: it did not, or it left). */
async function drained(res: ServerResponse, ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await once(res, 'drain', { signal: AbortSignal.any([signal, AbortSignal.timeout(ms)]) })
    return true
  } catch {
    return false
  }
}
