import { randomBytes } from 'node:crypto'
import type { PostgresLocation } from '../location.ts'
import { connect, type Sql } from './connect.ts'
import type { NotifiedReads } from './notified-reads.ts'

/** The channel the change triggers (MIGRATIONS[4]) notify and every serving instance listens on. */
export const CHANGES_CHANNEL = 'keyvalet_changes'
/** The application_name of the LISTEN connection, so that an operator can find (or end) it in pg_stat_activity. */
export const LISTEN_APPLICATION_NAME = 'keyvalet-listen'
/** Heartbeats sent and not yet back that are remembered; older ones no longer matter. */
const PENDING_HEARTBEATS = 16

export interface ChangeFeed {
  close(): Promise<void>
}

/**
 * Feeds `reads` with the store's own change signal: one LISTEN connection per instance (its own
 * application_name) and, every `resyncMs`, a heartbeat NOTIFY sent through the pool. Every
 * notification on the channel is a change (`reads.changed`) except this instance's heartbeats,
 * whose return proves the feed heard everything committed before they were sent
 * (`reads.confirmed`). The driver re-LISTENs by itself after the connection is lost (with
 * backoff) and then calls back: `reads.listening` flushes every read, since a change may have
 * gone unheard meanwhile. A heartbeat that does not come back leaves the kept reads unconfirmed,
 * so they stop answering within 3 × resyncMs (TRUSTED_RESYNCS) however the connection died. Resolves once listening.
 */
export async function startChangeFeed(location: PostgresLocation, pool: Sql, reads: NotifiedReads, resyncMs: number): Promise<ChangeFeed> {
  const listener = connect(location, { max: 1, applicationName: LISTEN_APPLICATION_NAME })
  const instance = randomBytes(9).toString('base64url')
  const beatPrefix = `beat:${instance}:`
  const pending = new Map<number, number>()
  let sent = 0
  const heard = (payload: string): void => {
    if (payload.startsWith('beat:')) {
      if (!payload.startsWith(beatPrefix)) return
      const seq = Number(payload.slice(beatPrefix.length))
      const sentAt = pending.get(seq)
      if (sentAt !== undefined) reads.confirmed(sentAt)
      for (const old of pending.keys()) if (old <= seq) pending.delete(old)
      return
    }
    reads.changed(payload)
  }
  try {
    await listener.listen(CHANGES_CHANNEL, heard, () => reads.listening())
  } catch (err) {
    await listener.end({ timeout: 1 })
    throw err
  }
  const beat = (): void => {
    const seq = ++sent
    pending.set(seq, performance.now())
    if (pending.size > PENDING_HEARTBEATS) pending.delete(seq - PENDING_HEARTBEATS)
    // A failure (the server is down) is what an unanswered heartbeat already says.
    pool.notify(CHANGES_CHANNEL, `${beatPrefix}${seq}`).catch(() => {})
  }
  beat()
  const timer = setInterval(beat, resyncMs)
  timer.unref()
  return {
    async close() {
      clearInterval(timer)
      reads.stopped()
      await listener.end({ timeout: 1 })
    },
  }
}
